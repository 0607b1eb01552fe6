package graphql

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// Role is what a token may do.
type Role string

const (
	RoleAdmin  Role = "admin"  // everything
	RoleViewer Role = "viewer" // queries only
)

// Token is a named API token with its role. The secret is given either as it is (Secret) or as the hex SHA-256
// digest of it (SHA256), so that the config file need not hold the token itself.
type Token struct {
	Name   string // recorded as the actor of audit events
	Secret string // what the client sends as "Authorization: Bearer <Secret>"
	SHA256 string // or: the lower- or upper-case hex SHA-256 of that secret (`printf %s TOKEN | sha256sum`)
	Role   Role
}

// digest is the SHA-256 the token is compared by; ok is false for a malformed SHA256.
func (t Token) digest() (sum [sha256.Size]byte, ok bool) {
	if t.SHA256 == "" {
		return sha256.Sum256([]byte(t.Secret)), true
	}
	b, err := hex.DecodeString(t.SHA256)
	if err != nil || len(b) != sha256.Size {
		return sum, false
	}
	copy(sum[:], b)
	return sum, true
}

// ValidateTokens checks a token list: each named, with a secret or its digest (not both), a known role, names
// and secrets unique.
func ValidateTokens(tokens []Token) error {
	names := map[string]bool{}
	secrets := map[[sha256.Size]byte]string{}
	for i, t := range tokens {
		switch {
		case strings.TrimSpace(t.Name) == "":
			return fmt.Errorf("token %d: name is empty", i+1)
		case t.Name == "local" || t.Name == "system":
			return fmt.Errorf("token %q: the name %q is reserved for audit events without a token", t.Name, t.Name)
		case names[t.Name]:
			return fmt.Errorf("token %q: the name is used twice", t.Name)
		case t.Secret != "" && t.SHA256 != "":
			return fmt.Errorf("token %q: give the token or its sha256, not both", t.Name)
		case t.SHA256 != "":
			if _, ok := t.digest(); !ok {
				return fmt.Errorf("token %q: sha256 must be 64 hex digits (`printf %%s TOKEN | sha256sum`)", t.Name)
			}
		case len(t.Secret) < 16:
			return fmt.Errorf("token %q: the token must be at least 16 characters (e.g. `openssl rand -hex 24`)", t.Name)
		case strings.ContainsAny(t.Secret, " \t\r\n"):
			return fmt.Errorf("token %q: the token must not contain white space", t.Name)
		}
		if t.Role != RoleAdmin && t.Role != RoleViewer {
			return fmt.Errorf("token %q: role is %q; it must be admin or viewer", t.Name, t.Role)
		}
		sum, _ := t.digest()
		if other, ok := secrets[sum]; ok {
			return fmt.Errorf("tokens %q and %q have the same token", other, t.Name)
		}
		names[t.Name] = true
		secrets[sum] = t.Name
	}
	return nil
}

type principal struct {
	actor string
	role  Role
}

type authenticator struct {
	tokens []hashedToken // empty: loopback only, actor "local"
}

type hashedToken struct {
	sum  [sha256.Size]byte
	name string
	role Role
}

func newAuthenticator(tokens []Token) *authenticator {
	a := &authenticator{}
	for _, t := range tokens {
		sum, _ := t.digest() // ValidateTokens refused a malformed one
		a.tokens = append(a.tokens, hashedToken{sum: sum, name: t.Name, role: t.Role})
	}
	return a
}

// authError is a refused authentication: the HTTP status and the API error.
type authError struct {
	status int
	code   string
	msg    string
}

// authenticate finds who sends r. Tokens are compared as SHA-256 sums in constant time, against every token,
// so neither the time taken nor an early exit tells how close a guess was.
func (a *authenticator) authenticate(r *http.Request) (principal, *authError) {
	if len(a.tokens) == 0 {
		if !fromLoopback(r) {
			return principal{}, &authError{status: http.StatusForbidden, code: "FORBIDDEN",
				msg: "no API token is configured, so the API serves only loopback clients: configure tokens " +
					"(the tokens list of the config file) to serve other addresses"}
		}
		return principal{actor: "local", role: RoleAdmin}, nil
	}
	h := r.Header.Get("Authorization")
	scheme, secret, ok := strings.Cut(h, " ")
	if h == "" {
		return principal{}, &authError{status: http.StatusUnauthorized, code: "UNAUTHENTICATED",
			msg: "authentication required: send the header Authorization: Bearer <token>"}
	}
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(secret) == "" {
		return principal{}, &authError{status: http.StatusUnauthorized, code: "UNAUTHENTICATED",
			msg: "the Authorization header must be: Bearer <token>"}
	}
	sum := sha256.Sum256([]byte(strings.TrimSpace(secret)))
	found := -1
	for i := range a.tokens {
		if subtle.ConstantTimeCompare(sum[:], a.tokens[i].sum[:]) == 1 {
			found = i
		}
	}
	if found < 0 {
		return principal{}, &authError{status: http.StatusUnauthorized, code: "UNAUTHENTICATED",
			msg: "the bearer token is not one of the configured tokens"}
	}
	return principal{actor: a.tokens[found].name, role: a.tokens[found].role}, nil
}

func fromLoopback(r *http.Request) bool {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return false
	}
	return ip.Unmap().IsLoopback()
}
