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

// DefaultIPv6Prefix is the prefix length by which [ClientIP] groups IPv6
// clients: all the addresses of a /64, the block a single customer
// (a home, a server, a phone) is usually given, share one key. A client can
// pick a new address within its /64 at will; keying by the whole address
// would give it a fresh budget each time.
const DefaultIPv6Prefix = 64

// ClientIP returns a KeyFunc that keys requests by the client's IP address:
// the address itself for IPv4 ("203.0.113.7"), and its /64
// ("2001:db8:1:2::/64", see [DefaultIPv6Prefix]) for IPv6. It is
// ClientIPKey(WithTrustedProxies(trusted...)).
//
// With no trusted proxies it uses the address of the peer (the request's
// RemoteAddr) and ignores X-Forwarded-For, which any client can forge.
// When the peer's address is within a trusted prefix, it walks the
// X-Forwarded-For header (all its fields, joined) from right to left,
// skipping the addresses of trusted proxies: the first address that is
// not trusted is the client. If every address is trusted it is the
// leftmost; if an entry is not an IP address, the walk stops and the
// last trusted hop is the client, since no trusted proxy writes such an
// entry. Entries may carry a port ("198.51.100.9:4711",
// "[2001:db8::1]:4711") and IPv6 ones brackets ("[2001:db8::1]").
//
// List only the proxies you run (load balancers, CDNs' published ranges);
// a trusted prefix that includes clients lets them choose their key.
func ClientIP(trusted ...netip.Prefix) KeyFunc {
	return ClientIPKey(WithTrustedProxies(trusted...))
}

// An IPOption configures [ClientIPKey]. (It is a type of its own, so that
// it cannot be passed to the middleware by mistake.)
type IPOption interface{ applyIP(*ipConfig) }

type ipConfig struct {
	trusted []netip.Prefix
	v6Bits  int
}

type ipOptionFunc func(*ipConfig)

func (f ipOptionFunc) applyIP(c *ipConfig) { f(c) }

// WithTrustedProxies adds prefixes of proxies whose X-Forwarded-For
// entries are believed, as [ClientIP] describes. A prefix may be written
// IPv4-mapped ("::ffff:10.0.0.0/104" is 10.0.0.0/8): addresses are
// compared unmapped. Default: none (X-Forwarded-For is ignored). No
// prefixes keeps the default.
func WithTrustedProxies(prefixes ...netip.Prefix) IPOption {
	return ipOptionFunc(func(c *ipConfig) {
		for _, p := range prefixes {
			if !p.IsValid() {
				continue
			}
			p = p.Masked()
			if p.Addr().Is4In6() && p.Bits() >= 96 {
				p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
			}
			c.trusted = append(c.trusted, p)
		}
	})
}

// WithIPv6Prefix sets the prefix length by which IPv6 clients are keyed:
// every address of one prefix shares a key, written as the prefix
// ("2001:db8:1:2::/64"). 128 keys each address on its own, written as the
// address. Default: DefaultIPv6Prefix (64). Zero or negative keeps the
// default; above 128 means 128. IPv4 clients are always keyed by their
// address.
func WithIPv6Prefix(bits int) IPOption {
	return ipOptionFunc(func(c *ipConfig) {
		if bits > 0 {
			c.v6Bits = min(bits, 128)
		}
	})
}

// ClientIPKey returns a KeyFunc that keys requests by the client's IP
// address, as [ClientIP] does, configured by opts. Nil options are
// skipped.
func ClientIPKey(opts ...IPOption) KeyFunc {
	c := ipConfig{v6Bits: DefaultIPv6Prefix}
	for _, o := range opts {
		if o != nil {
			o.applyIP(&c)
		}
	}
	ps := c.trusted
	isTrusted := func(a netip.Addr) bool {
		for _, p := range ps {
			if p.Contains(a) {
				return true
			}
		}
		return false
	}
	key := func(a netip.Addr) string {
		if a.Is6() && c.v6Bits < 128 {
			return netip.PrefixFrom(a, c.v6Bits).Masked().String()
		}
		return a.String()
	}
	return func(r *http.Request) (string, error) {
		peer, ok := parseAddr(r.RemoteAddr)
		if !ok {
			return "", fmt.Errorf("%w: unparsable remote address %q", ErrNoKey, r.RemoteAddr)
		}
		if len(ps) == 0 || !isTrusted(peer) {
			return key(peer), nil
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
					return key(client), nil
				}
				client = a
				if !isTrusted(a) {
					return key(a), nil
				}
			}
		}
		return key(client), nil
	}
}

// parseAddr reads "ip", "[ipv6]", "ip:port" or "[ipv6]:port", dropping any
// zone and unmapping IPv4-mapped IPv6 addresses.
func parseAddr(s string) (netip.Addr, bool) {
	if len(s) > 2 && s[0] == '[' && s[len(s)-1] == ']' {
		s = s[1 : len(s)-1]
	}
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
