package cli

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"

	"github.com/cloudrift/cloudrift/config"
	"github.com/cloudrift/cloudrift/registry"
)

// advertiseAuto is the -advertise value that derives the advertised address
// from this host's interfaces; "auto:IFACE" names the interface.
const advertiseAuto = "auto"

// ErrAdvertise is wrapped by every failure to derive an advertised address.
var ErrAdvertise = errors.New("advertise")

// defaultRouteProbe is an address that, on almost every host, only the
// default route reaches (TEST-NET-2, RFC 5737, reserved for documentation).
// A UDP socket "connected" to it reveals the address of the default route's
// interface; no packet is sent. Should a local network hold it after all,
// the kernel picks that network's interface: still an address of this host.
const defaultRouteProbe = "198.51.100.1:9"

// autoAdvertise is a parsed "-advertise auto[:IFACE]".
type autoAdvertise struct {
	iface string // "": the interface that routes to the registry
}

// parseAutoAdvertise reports whether v asks for an automatic address.
func parseAutoAdvertise(v string) (autoAdvertise, bool) {
	if v == advertiseAuto {
		return autoAdvertise{}, true
	}
	if iface, ok := strings.CutPrefix(v, advertiseAuto+":"); ok && iface != "" && !strings.Contains(iface, ":") {
		return autoAdvertise{iface: iface}, true
	}
	return autoAdvertise{}, false
}

// host returns the IP that peers should dial to reach a server listening on
// listen (the listener's actual address). The rules, in order:
//
//   - a listener bound to one address is reachable only there: that address
//     (for auto:IFACE it must be one of IFACE's, else an error);
//   - auto:IFACE: the interface's first IPv4 address, else its first global
//     IPv6 address;
//   - auto: the local address of the route to the registry agent at
//     registry ("host:port" or a URL; "" when there is none). When that
//     route is loopback (an agent on this host, the usual Consul layout),
//     the address of the default route's interface instead, and loopback
//     only when the host has no default route (a machine on its own).
func (a autoAdvertise) host(listen *net.TCPAddr, registry string) (net.IP, error) {
	bound := listen.IP != nil && !listen.IP.IsUnspecified()
	if a.iface != "" {
		ips, err := interfaceIPs(a.iface)
		if err != nil {
			return nil, err
		}
		if bound {
			for _, ip := range ips {
				if ip.Equal(listen.IP) {
					return ip, nil
				}
			}
			return nil, fmt.Errorf("%w: listening on %s, which is not an address of interface %s", ErrAdvertise, listen.IP, a.iface)
		}
		return ips[0], nil
	}
	if bound {
		return listen.IP, nil
	}
	if registry != "" {
		ip, err := routeTo(registryHostPort(registry))
		if err != nil {
			return nil, fmt.Errorf("%w: no route to the registry at %s: %v", ErrAdvertise, registry, err)
		}
		if !ip.IsLoopback() {
			return ip, nil
		}
	}
	if ip, err := routeTo(defaultRouteProbe); err == nil && !ip.IsLoopback() {
		return ip, nil
	}
	return net.IPv4(127, 0, 0, 1), nil
}

// isWildcard reports whether a listen host means every interface.
func isWildcard(host string) bool {
	if host == "" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsUnspecified()
}

// routeTo returns the local address the kernel picks to reach addr. Connecting
// a UDP socket only chooses the route; nothing is sent.
func routeTo(addr string) (net.IP, error) {
	c, err := net.Dial("udp", addr)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).IP, nil
}

// registryHostPort turns a registry address ("host:port", "host", or a URL
// such as "https://host:8501") into host:port for a route lookup; the port
// does not change the route, so a missing one becomes Consul's 8500.
func registryHostPort(addr string) string {
	if u, err := url.Parse(addr); err == nil && u.Host != "" {
		addr = u.Host
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return net.JoinHostPort(strings.Trim(addr, "[]"), "8500")
	}
	return addr
}

// interfaceIPs returns the usable unicast addresses of the named interface,
// IPv4 first; link-local ones are left out (they need a zone to dial).
func interfaceIPs(name string) ([]net.IP, error) {
	ifi, err := net.InterfaceByName(name)
	if err != nil {
		return nil, fmt.Errorf("%w: interface %q: %v", ErrAdvertise, name, err)
	}
	addrs, err := ifi.Addrs()
	if err != nil {
		return nil, fmt.Errorf("%w: interface %q: %v", ErrAdvertise, name, err)
	}
	var v4, v6 []net.IP
	for _, a := range addrs {
		n, ok := a.(*net.IPNet)
		if !ok || n.IP.IsLinkLocalUnicast() || n.IP.IsMulticast() {
			continue
		}
		if n.IP.To4() != nil {
			v4 = append(v4, n.IP.To4())
		} else {
			v6 = append(v6, n.IP)
		}
	}
	ips := append(v4, v6...)
	if len(ips) == 0 {
		return nil, fmt.Errorf("%w: interface %q has no usable address", ErrAdvertise, name)
	}
	return ips, nil
}

// listenAuto listens on addr and returns the listener with the address to
// advertise for it: a's host and the listener's port (so port 0 works).
func listenAuto(a autoAdvertise, addr, registry string) (net.Listener, string, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, "", fmt.Errorf("listen: %w", err)
	}
	tcp := ln.Addr().(*net.TCPAddr)
	ip, err := a.host(tcp, registry)
	if err != nil {
		ln.Close()
		return nil, "", err
	}
	return ln, net.JoinHostPort(ip.String(), fmt.Sprint(tcp.Port)), nil
}

// listenForAdvertise handles "-advertise auto[:IFACE]": it listens on the
// server's listen address (o.listen, else the group's, else 127.0.0.1:0,
// as cluster.Server would) and replaces o.advertise with the derived
// address. It returns nil, nil when o.advertise is not automatic; the
// caller hands a returned listener to the server, or closes it. With no
// -advertise at all, a wildcard listen address is an error that names
// the choices.
func (o *runOptions) listenForAdvertise(g *config.Group, conn registry.Connector) (net.Listener, error) {
	addr := o.listen
	if addr == "" {
		addr = g.Listen
	}
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	a, ok := parseAutoAdvertise(o.advertise)
	if !ok {
		if host, _, err := net.SplitHostPort(addr); o.advertise == "" && err == nil && isWildcard(host) {
			return nil, fmt.Errorf("%w: listening on every interface (%s), peers need an address to dial: set -advertise host:port, or -advertise auto (env CLOUDRIFT_ADVERTISE)", ErrAdvertise, addr)
		}
		return nil, nil
	}
	var reg string
	if c, ok := conn.(interface{ Address() string }); ok {
		reg = c.Address()
	}
	ln, adv, err := listenAuto(a, addr, reg)
	if err != nil {
		return nil, err
	}
	o.advertise = adv
	return ln, nil
}
