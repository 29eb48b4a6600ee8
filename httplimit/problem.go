package httplimit

import (
	"encoding/json"
	"strconv"
	"strings"
)

// ProblemTypeQuotaExceeded is the problem type (RFC 9457) of the body of
// a refusal sent as application/problem+json, as
// draft-ietf-httpapi-ratelimit-headers registers it.
const ProblemTypeQuotaExceeded = "https://iana.org/assignments/http-problem-types#quota-exceeded"

// problem is the body of a refusal as application/problem+json.
type problem struct {
	Type             string   `json:"type"`
	Title            string   `json:"title"`
	Status           int      `json:"status"`
	Detail           string   `json:"detail,omitempty"`
	ViolatedPolicies []string `json:"violated-policies,omitempty"`
}

const problemJSON = "application/problem+json"

// problemBody returns the problem+json body of a 429 that names the
// policies that refused and when to retry.
func problemBody(ps []policy, retry int64) []byte {
	p := problem{
		Type:   ProblemTypeQuotaExceeded,
		Title:  "Request cannot be satisfied as assigned quota has been exceeded",
		Status: 429,
		Detail: "Retry after " + strconv.FormatInt(retry, 10) + " s.",
	}
	for _, x := range ps {
		if x.checked && !x.d.Allowed && x.limit.Validate() == nil {
			p.ViolatedPolicies = append(p.ViolatedPolicies, x.name)
		}
	}
	b, _ := json.Marshal(p) // cannot fail: strings and an int
	return append(b, '\n')
}

// prefersProblem reports whether a request with this Accept header
// prefers application/problem+json to text/plain: the most specific media
// range that matches each gives its quality (RFC 9110, section 12.5.1),
// and problem+json must rank strictly higher. A client that accepts
// application/json accepts its problem+json form. No Accept header, or
// "*/*" alone, ranks them equal: plain text.
func prefersProblem(accept string) bool {
	if accept == "" {
		return false
	}
	qJSON, qText := quality(accept, "application", "problem+json", "json"), quality(accept, "text", "plain", "")
	return qJSON > 0 && qJSON > qText
}

// quality returns the quality an Accept header gives type/sub (or
// type/alt, a range that covers it less specifically than type/sub
// itself), from its most specific matching range; 0 if none matches.
func quality(accept, typ, sub, alt string) float64 {
	best, q := -1, 0.0
	for _, r := range strings.Split(accept, ",") {
		params := strings.Split(r, ";")
		mt := strings.ToLower(strings.TrimSpace(params[0]))
		t, s, ok := strings.Cut(mt, "/")
		if !ok {
			continue
		}
		spec := -1
		switch {
		case t == typ && s == sub:
			spec = 3
		case t == typ && alt != "" && s == alt:
			spec = 2 // covers sub, less specifically: sub's own range wins
		case t == typ && s == "*":
			spec = 1
		case t == "*" && s == "*":
			spec = 0
		}
		if spec < best || spec < 0 {
			continue
		}
		rq := 1.0
		for _, p := range params[1:] {
			k, v, _ := strings.Cut(strings.TrimSpace(p), "=")
			if strings.EqualFold(strings.TrimSpace(k), "q") {
				if f, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil && f >= 0 && f <= 1 {
					rq = f
				} else {
					rq = 0
				}
			}
		}
		if spec > best || rq > q {
			best, q = spec, rq
		}
	}
	return q
}
