package httplimit

import (
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"strings"
)

// ErrNoKey is matched when a [KeyFunc] finds no client key in a request,
// such as a missing API key header. The middleware answers 400 Bad
// Request.
var ErrNoKey = errors.New("httplimit: no client key in request")

// A KeyFunc extracts the client key of a request: the key the limits are
// counted against. It returns an error matching [ErrNoKey] when the
// request carries none. It must be safe for concurrent use.
type KeyFunc func(r *http.Request) (string, error)

// ClientIP returns a KeyFunc that keys requests by the client's IP
// address, as a string such as "203.0.113.7" or "2001:db8::1".
//
// With no trusted proxies it uses the address of the peer (the request's
// RemoteAddr) and ignores X-Forwarded-For, which any client can forge.
// When the peer's address is within a trusted prefix, it walks the
// X-Forwarded-For header (all its fields, joined) from right to left,
// skipping the addresses of trusted proxies: the first address that is
// not trusted is the client. If every address is trusted it is the
// leftmost; if an entry is not an IP address, the walk stops and the
// last trusted hop is the client, since no trusted proxy writes such an
// entry.
//
// List only the proxies you run (load balancers, CDNs' published ranges);
// a trusted prefix that includes clients lets them choose their key.
func ClientIP(trusted ...netip.Prefix) KeyFunc {
	ps := make([]netip.Prefix, len(trusted))
	for i, p := range trusted {
		ps[i] = p.Masked()
	}
	isTrusted := func(a netip.Addr) bool {
		for _, p := range ps {
			if p.Contains(a) {
				return true
			}
		}
		return false
	}
	return func(r *http.Request) (string, error) {
		peer, ok := parseAddr(r.RemoteAddr)
		if !ok {
			return "", fmt.Errorf("%w: unparsable remote address %q", ErrNoKey, r.RemoteAddr)
		}
		if len(ps) == 0 || !isTrusted(peer) {
			return peer.String(), nil
		}
		client := peer
		values := r.Header.Values("X-Forwarded-For")
		for i := len(values) - 1; i >= 0; i-- {
			hops := strings.Split(values[i], ",")
			for j := len(hops) - 1; j >= 0; j-- {
				hop := strings.TrimSpace(hops[j])
				if hop == "" {
					continue
				}
				a, ok := parseAddr(hop)
				if !ok {
					return client.String(), nil
				}
				client = a
				if !isTrusted(a) {
					return a.String(), nil
				}
			}
		}
		return client.String(), nil
	}
}

// parseAddr reads "ip", "ip:port" or "[ipv6]:port", dropping any zone and
// unmapping IPv4-mapped IPv6 addresses.
func parseAddr(s string) (netip.Addr, bool) {
	a, err := netip.ParseAddr(s)
	if err != nil {
		ap, err := netip.ParseAddrPort(s)
		if err != nil {
			return netip.Addr{}, false
		}
		a = ap.Addr()
	}
	return a.Unmap().WithZone(""), true
}

// Header returns a KeyFunc that keys requests by the value of the header
// name, such as an API key. A request without it, or with an empty one,
// fails with [ErrNoKey].
//
// The value becomes part of Redis key names: if it is a secret, consider
// a KeyFunc of your own that hashes it.
func Header(name string) KeyFunc {
	name = http.CanonicalHeaderKey(name)
	return func(r *http.Request) (string, error) {
		v := strings.TrimSpace(r.Header.Get(name))
		if v == "" {
			return "", fmt.Errorf("%w: header %s missing", ErrNoKey, name)
		}
		return v, nil
	}
}
