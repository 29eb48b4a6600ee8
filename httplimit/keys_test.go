package httplimit_test

import (
	"errors"
	"net/http/httptest"
	"net/netip"
	"testing"

	"github.com/distributedratelimiter/ratelimit/httplimit"
)

func TestClientIP(t *testing.T) {
	proxies := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("fd00::/8")}
	tests := []struct {
		name    string
		trusted []netip.Prefix
		remote  string
		xff     []string
		want    string
	}{
		{"peer address", nil, "203.0.113.7:5555", nil, "203.0.113.7"},
		{"spoofed XFF ignored by default", nil, "203.0.113.7:5555", []string{"1.2.3.4"}, "203.0.113.7"},
		{"XFF ignored from an untrusted peer", proxies, "203.0.113.7:5555", []string{"1.2.3.4"}, "203.0.113.7"},
		{"client behind a trusted proxy", proxies, "10.0.0.1:80", []string{"198.51.100.9"}, "198.51.100.9"},
		{"rightmost untrusted hop wins", proxies, "10.0.0.1:80", []string{"6.6.6.6, 198.51.100.9, 10.0.0.2"}, "198.51.100.9"},
		{"spoofed entries left of the client ignored", proxies, "10.0.0.1:80", []string{"127.0.0.1, 6.6.6.6", "198.51.100.9"}, "198.51.100.9"},
		{"several XFF fields read in order", proxies, "10.0.0.1:80", []string{"198.51.100.9", "10.0.0.3"}, "198.51.100.9"},
		{"all hops trusted: leftmost", proxies, "10.0.0.1:80", []string{"10.0.0.5, 10.0.0.2"}, "10.0.0.5"},
		{"no XFF from a trusted proxy", proxies, "10.0.0.1:80", nil, "10.0.0.1"},
		{"garbage hop: the last trusted hop", proxies, "10.0.0.1:80", []string{"198.51.100.9, unknown"}, "10.0.0.1"},
		{"hop with a port", proxies, "10.0.0.1:80", []string{"198.51.100.9:1234"}, "198.51.100.9"},
		{"IPv6 peer: its /64", nil, "[2001:db8::1]:443", nil, "2001:db8::/64"},
		{"IPv6 client behind an IPv6 proxy: its /64", proxies, "[fd00::1]:443", []string{"2001:db8:0:7:1::2"}, "2001:db8:0:7::/64"},
		{"IPv6 hop in brackets", proxies, "10.0.0.1:80", []string{"[2001:db8:1::9]"}, "2001:db8:1::/64"},
		{"IPv6 hop in brackets with a port", proxies, "10.0.0.1:80", []string{"6.6.6.6, [2001:db8:1::9]:4711"}, "2001:db8:1::/64"},
		{"bracketed trusted hop skipped", proxies, "10.0.0.1:80", []string{"198.51.100.9, [fd00::5]"}, "198.51.100.9"},
		{"IPv4-mapped trusted prefix", []netip.Prefix{netip.MustParsePrefix("::ffff:10.0.0.0/104")}, "10.1.2.3:80", []string{"198.51.100.9"}, "198.51.100.9"},
		{"IPv4-mapped trusted prefix, mapped peer", []netip.Prefix{netip.MustParsePrefix("::ffff:10.0.0.0/104")}, "[::ffff:10.1.2.3]:80", []string{"198.51.100.9, 10.9.9.9"}, "198.51.100.9"},
		{"IPv4-mapped prefix does not trust others", []netip.Prefix{netip.MustParsePrefix("::ffff:10.0.0.0/104")}, "11.0.0.1:80", []string{"198.51.100.9"}, "11.0.0.1"},
		{"IPv4-mapped peer unmapped", nil, "[::ffff:203.0.113.7]:80", nil, "203.0.113.7"},
		{"peer without port", nil, "203.0.113.7", nil, "203.0.113.7"},
	}
	for _, tt := range tests {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = tt.remote
		for _, v := range tt.xff {
			r.Header.Add("X-Forwarded-For", v)
		}
		got, err := httplimit.ClientIP(tt.trusted...)(r)
		if err != nil || got != tt.want {
			t.Errorf("%s: ClientIP = %q, %v; want %q", tt.name, got, err, tt.want)
		}
	}
	r := httptest.NewRequest("GET", "/", nil)
	r.RemoteAddr = "@"
	if _, err := httplimit.ClientIP()(r); !errors.Is(err, httplimit.ErrNoKey) {
		t.Errorf("unparsable RemoteAddr: %v, want ErrNoKey", err)
	}
}

// TestClientIPv6Prefix: IPv6 clients are keyed by their /64 by default, so
// rotating addresses within it gains nothing; WithIPv6Prefix changes the
// grouping; IPv4 is keyed by address whatever it says.
func TestClientIPv6Prefix(t *testing.T) {
	tests := []struct {
		name   string
		opts   []httplimit.IPOption
		remote string
		want   string
	}{
		{"default /64", nil, "[2001:db8:a:b:c:d:e:f]:1", "2001:db8:a:b::/64"},
		{"zero keeps the default", []httplimit.IPOption{httplimit.WithIPv6Prefix(0), nil}, "[2001:db8:a:b:c:d:e:f]:1", "2001:db8:a:b::/64"},
		{"/48", []httplimit.IPOption{httplimit.WithIPv6Prefix(48)}, "[2001:db8:a:b:c:d:e:f]:1", "2001:db8:a::/48"},
		{"/128: the address", []httplimit.IPOption{httplimit.WithIPv6Prefix(128)}, "[2001:db8:a:b:c:d:e:f]:1", "2001:db8:a:b:c:d:e:f"},
		{"above 128 means 128", []httplimit.IPOption{httplimit.WithIPv6Prefix(200)}, "[2001:db8::1]:1", "2001:db8::1"},
		{"zone dropped", nil, "[fe80::1%eth0]:1", "fe80::/64"},
		{"IPv4 by address", []httplimit.IPOption{httplimit.WithIPv6Prefix(48)}, "203.0.113.7:1", "203.0.113.7"},
		{"IPv4-mapped peer by IPv4 address", nil, "[::ffff:203.0.113.7]:1", "203.0.113.7"},
	}
	for _, tt := range tests {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = tt.remote
		got, err := httplimit.ClientIPKey(tt.opts...)(r)
		if err != nil || got != tt.want {
			t.Errorf("%s: key %q, %v; want %q", tt.name, got, err, tt.want)
		}
	}
	// Rotating within the /64 shares one key.
	f := httplimit.ClientIP()
	seen := map[string]bool{}
	for _, remote := range []string{"[2001:db8:0:1::1]:1", "[2001:db8:0:1:ffff::2]:1", "[2001:db8:0:1:1234:5678:9abc:def0]:1"} {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = remote
		k, _ := f(r)
		seen[k] = true
	}
	if len(seen) != 1 {
		t.Errorf("addresses of one /64 got keys %v, want one", seen)
	}
}

func TestHeaderKey(t *testing.T) {
	f := httplimit.Header("x-api-key")
	r := httptest.NewRequest("GET", "/", nil)
	if _, err := f(r); !errors.Is(err, httplimit.ErrNoKey) {
		t.Errorf("missing header: %v, want ErrNoKey", err)
	}
	r.Header.Set("X-Api-Key", " k-123 ")
	if got, err := f(r); got != "k-123" || err != nil {
		t.Errorf("Header = %q, %v; want k-123", got, err)
	}
}
