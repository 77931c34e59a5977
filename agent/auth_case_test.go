package agent

import (
	"net/http/httptest"
	"testing"

	"github.com/mitosis-autoscaler/mitosis/config"
)

// TestBearerSchemeIsCaseInsensitive: RFC 7235 makes the auth scheme
// case-insensitive, so "bearer TOKEN" is as good as "Bearer TOKEN"; the
// token itself is compared exactly, and other schemes are no token.
func TestBearerSchemeIsCaseInsensitive(t *testing.T) {
	ts, err := loadTokens(config.APIConfig{}, map[string]principal{"t0k-canary": {Name: "ci", Role: RoleAdmin}})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		header string
		want   Role
	}{
		{"Bearer t0k-canary", RoleAdmin},
		{"bearer t0k-canary", RoleAdmin},
		{"BEARER t0k-canary", RoleAdmin},
		{"bEaReR  t0k-canary", RoleAdmin},
		{"bearer T0K-CANARY", RoleNone},
		{"Basic t0k-canary", RoleNone},
		{"Bearert0k-canary", RoleNone},
		{"bearer ", RoleNone},
		{"t0k-canary", RoleNone},
		{"", RoleNone},
	} {
		r := httptest.NewRequest("GET", "/v1/status", nil)
		if c.header != "" {
			r.Header.Set("Authorization", c.header)
		}
		if got := ts.who(r); got.Role != c.want {
			t.Errorf("Authorization %q: role %v, want %v", c.header, got.Role, c.want)
		}
	}
}
