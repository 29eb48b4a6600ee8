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
		{"IPv6 peer", nil, "[2001:db8::1]:443", nil, "2001:db8::1"},
		{"IPv6 client behind an IPv6 proxy", proxies, "[fd00::1]:443", []string{"2001:db8::2"}, "2001:db8::2"},
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
