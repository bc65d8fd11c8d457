package plugins

import (
	"fmt"
	"reflect"
	"sort"
	"strings"
)

// hookInterfaces returns the optional interfaces through which a server
// calls a plugin. A plugin implements a hook by having all of its
// interface's methods with exactly their signatures.
func hookInterfaces() []reflect.Type {
	return []reflect.Type{
		reflect.TypeFor[Validator](),
		reflect.TypeFor[Starter](),
		reflect.TypeFor[Stopper](),
		reflect.TypeFor[ServerJoinedHandler](),
		reflect.TypeFor[ServerLeftHandler](),
		reflect.TypeFor[ServerConnectedHandler](),
		reflect.TypeFor[ServerDisconnectedHandler](),
		reflect.TypeFor[ServerMessageHandler](),
		reflect.TypeFor[ClientAuthenticator](),
		reflect.TypeFor[ClientConnectedHandler](),
		reflect.TypeFor[ClientMessageHandler](),
		reflect.TypeFor[ClientDisconnectedHandler](),
		reflect.TypeFor[ClientSendFailedHandler](),
		reflect.TypeFor[CloudFilter](),
		reflect.TypeFor[CloudNotificationHandler](),
	}
}

// MisnamedHook is an exported method of a plugin that is named like a
// method of a hook interface, in a plugin that does not implement that
// interface: the server never calls it.
type MisnamedHook struct {
	// Method is the plugin's method, such as "ClientMessage".
	Method string
	// Hook is the interface it was meant for, such as
	// "plugins.ClientMessageHandler".
	Hook string
	// Has is the method's signature, such as "func(plugins.Client, []uint8)".
	Has string
	// Want is what the hook expects: the method's signature, or, when that
	// matches, the interface's methods the plugin lacks.
	Want string
}

func (m MisnamedHook) String() string {
	return fmt.Sprintf("method %s %s is never called: %s wants %s", m.Method, m.Has, m.Hook, m.Want)
}

// MisnamedHooks returns the exported methods of p that are named like a
// method of a hook interface (Starter, ClientMessageHandler, ..., and the
// interfaces in more, such as package extension's) although p does not
// implement that interface, so that the server never calls them: a wrong
// signature, or a multi-method hook with a method missing. It returns nil
// when there are none.
func MisnamedHooks(p Plugin, more ...reflect.Type) []MisnamedHook {
	if p == nil {
		return nil
	}
	v := reflect.ValueOf(p)
	t := v.Type()
	var found []MisnamedHook
	for _, hook := range append(hookInterfaces(), more...) {
		if t.Implements(hook) {
			continue
		}
		for i := 0; i < hook.NumMethod(); i++ {
			want := hook.Method(i)
			m := v.MethodByName(want.Name)
			if !m.IsValid() {
				continue
			}
			mh := MisnamedHook{Method: want.Name, Hook: hook.String(), Has: m.Type().String(), Want: want.Type.String()}
			if m.Type() == want.Type {
				mh.Want = "also " + strings.Join(missingMethods(v, hook), ", ")
			}
			found = append(found, mh)
		}
	}
	sort.SliceStable(found, func(i, j int) bool { return found[i].Method < found[j].Method })
	return found
}

// missingMethods lists hook's methods that v lacks or has with another
// signature, each with the signature hook wants.
func missingMethods(v reflect.Value, hook reflect.Type) []string {
	var missing []string
	for i := 0; i < hook.NumMethod(); i++ {
		want := hook.Method(i)
		if m := v.MethodByName(want.Name); !m.IsValid() || m.Type() != want.Type {
			missing = append(missing, want.Name+" "+want.Type.String())
		}
	}
	return missing
}
