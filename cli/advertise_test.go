package cli

import (
	"errors"
	"net"
	"regexp"
	"strings"
	"testing"
)

func TestParseAutoAdvertise(t *testing.T) {
	for _, c := range []struct {
		in    string
		auto  bool
		iface string
	}{
		{"auto", true, ""},
		{"auto:eth0", true, "eth0"},
		{"auto:", false, ""},
		{"auto:8080", true, "8080"}, // an interface may be called so; a port is "auto" without a host
		{"10.0.0.1:7000", false, ""},
		{"", false, ""},
		{"autohost:7000", false, ""},
		{"auto:[::1]:7000", false, ""},
	} {
		a, ok := parseAutoAdvertise(c.in)
		if ok != c.auto || a.iface != c.iface {
			t.Errorf("parseAutoAdvertise(%q) = %+v, %v; want iface %q, %v", c.in, a, ok, c.iface, c.auto)
		}
	}
}

func TestRegistryHostPort(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.1:8500":         "127.0.0.1:8500",
		"consul":                 "consul:8500",
		"http://consul:8500":     "consul:8500",
		"https://10.1.2.3:8501/": "10.1.2.3:8501",
		"[::1]:8500":             "[::1]:8500",
		"::1":                    "[::1]:8500",
	} {
		if got := registryHostPort(in); got != want {
			t.Errorf("registryHostPort(%q) = %q, want %q", in, got, want)
		}
	}
}

// loopbackName returns the name of the loopback interface.
func loopbackName(t *testing.T) string {
	t.Helper()
	ifs, err := net.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range ifs {
		if i.Flags&net.FlagLoopback != 0 && i.Flags&net.FlagUp != 0 {
			return i.Name
		}
	}
	t.Skip("no loopback interface")
	return ""
}

// isLocal reports whether ip is an address of one of this host's interfaces.
func isLocal(t *testing.T, ip net.IP) bool {
	t.Helper()
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.Equal(ip) {
			return true
		}
	}
	return false
}

// dialAccept proves that adv reaches ln: a connection dialled to it is
// accepted there.
func dialAccept(t *testing.T, ln net.Listener, adv string) {
	t.Helper()
	accepted := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			c.Close()
		}
		accepted <- err
	}()
	c, err := net.Dial("tcp", adv)
	if err != nil {
		t.Fatalf("dial the advertised %s: %v", adv, err)
	}
	c.Close()
	if err := <-accepted; err != nil {
		t.Fatalf("accept: %v", err)
	}
}

func TestListenAuto(t *testing.T) {
	lo := loopbackName(t)
	for _, c := range []struct {
		name     string
		auto     autoAdvertise
		listen   string
		registry string
		want     string // a regexp the advertised address must match; "" any local address
	}{
		{"bound listener wins", autoAdvertise{}, "127.0.0.1:0", "198.51.100.7:8500", `^127\.0\.0\.1:\d+$`},
		{"named interface", autoAdvertise{iface: lo}, "0.0.0.0:0", "", `^127\.0\.0\.1:\d+$`},
		{"named interface holds the bound address", autoAdvertise{iface: lo}, "127.0.0.1:0", "", `^127\.0\.0\.1:\d+$`},
		// A registry on loopback stands for a per-host agent: the address is
		// the default route's, or loopback on a host without one.
		{"route to a loopback registry", autoAdvertise{}, "0.0.0.0:0", "127.0.0.1:8500", ""},
		{"route to a registry URL", autoAdvertise{}, "0.0.0.0:0", "http://127.0.0.1:8500", ""},
		{"no registry", autoAdvertise{}, "0.0.0.0:0", "", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			ln, adv, err := listenAuto(c.auto, c.listen, c.registry)
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			host, port, err := net.SplitHostPort(adv)
			if err != nil {
				t.Fatal(err)
			}
			if want := strings.TrimPrefix(ln.Addr().String()[strings.LastIndex(ln.Addr().String(), ":"):], ":"); port != want {
				t.Errorf("advertised port %s, listener's %s", port, want)
			}
			if c.want != "" && !regexp.MustCompile(c.want).MatchString(adv) {
				t.Errorf("advertised %s, want %s", adv, c.want)
			}
			ip := net.ParseIP(host)
			if ip == nil || ip.IsUnspecified() || !isLocal(t, ip) {
				t.Errorf("advertised %s: not an address of this host", adv)
			}
			dialAccept(t, ln, adv)
		})
	}
}

func TestListenAutoErrors(t *testing.T) {
	for _, c := range []struct {
		name   string
		auto   autoAdvertise
		listen string
	}{
		{"unknown interface", autoAdvertise{iface: "nosuch0"}, "0.0.0.0:0"},
		{"bound address not on the interface", autoAdvertise{iface: loopbackName(t)}, "127.0.0.2:0"},
	} {
		t.Run(c.name, func(t *testing.T) {
			ln, adv, err := listenAuto(c.auto, c.listen, "")
			if err == nil {
				ln.Close()
				t.Fatalf("advertised %s, want an error", adv)
			}
			if !errors.Is(err, ErrAdvertise) {
				t.Errorf("%v: not an ErrAdvertise", err)
			}
		})
	}
}

// TestRunAdvertiseAuto runs a client server listening on every interface
// with -advertise auto: it starts (without auto it would refuse), and the
// game clients' URL it prints is a local address with the listener's port.
func TestRunAdvertiseAuto(t *testing.T) {
	c := start(t, "run", "-config", repoFile, "-group", "client", "-listen", "0.0.0.0:0", "-advertise", "auto", "-log-level", "disabled")
	m := c.Match(t, &c.Stdout, regexp.MustCompile(`listening on \S+:(\d+),[^\n]*\ngame clients: ws://([^/]+):(\d+)/`))
	if m[1] != m[3] {
		t.Errorf("listening on port %s, advertised port %s", m[1], m[3])
	}
	if ip := net.ParseIP(m[2]); ip == nil || !isLocal(t, ip) {
		t.Errorf("advertised host %s: not an address of this host", m[2])
	}
	if code := c.Stop(t); code != 0 {
		t.Errorf("exit %d after cancel, want 0; stderr:\n%s", code, &c.Stderr)
	}
}

func TestRunAdvertiseAutoBadInterface(t *testing.T) {
	code, _, errOut := runSync(t, "run", "-config", repoFile, "-group", "world", "-listen", "0.0.0.0:0", "-advertise", "auto:nosuch0", "-log-level", "disabled")
	if code != 1 || !strings.Contains(errOut, `interface "nosuch0"`) {
		t.Errorf("exit %d, stderr:\n%s\nwant 1 and the interface named", code, errOut)
	}
}

func TestRunWildcardNeedsAdvertise(t *testing.T) {
	for _, listen := range []string{"0.0.0.0:0", ":0", "[::]:0"} {
		code, _, errOut := runSync(t, "run", "-config", repoFile, "-group", "world", "-listen", listen, "-log-level", "disabled")
		if code != 1 || !strings.Contains(errOut, "-advertise auto") {
			t.Errorf("-listen %s: exit %d, stderr:\n%s\nwant 1 and the -advertise choices", listen, code, errOut)
		}
	}
}
