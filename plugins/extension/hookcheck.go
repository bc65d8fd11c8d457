package extension

import (
	"reflect"

	"github.com/cloudrift/cloudrift/plugins"
)

// MisnamedHooks is plugins.MisnamedHooks over the hooks of both packages:
// the exported methods of p named like a method of a plugin or extension
// hook that p does not implement, so that the server never calls them.
func MisnamedHooks(p plugins.Plugin) []plugins.MisnamedHook {
	return plugins.MisnamedHooks(p,
		reflect.TypeFor[FrameHandler](),
		reflect.TypeFor[PeersHandler](),
		reflect.TypeFor[CloudMemoryProvider](),
	)
}
