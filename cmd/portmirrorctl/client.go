package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"
)

// Exit statuses: each says what failed, so that a script can tell a refused request from a broken link.
const (
	exitOK          = 0
	exitFailure     = 1 // anything not below, e.g. an answer that is not the API's
	exitUsage       = 2 // the command line is wrong
	exitUnreachable = 3 // the API could not be reached (connection, TLS, timeout)
	exitAuth        = 4 // UNAUTHENTICATED or FORBIDDEN
	exitNotFound    = 5 // NOT_FOUND, or a query for one object that answered null
	exitRefused     = 6 // VALIDATION or CONFLICT: the request broke a rule (the message names it), or names an operation the API lacks
	exitServer      = 7 // INTERNAL, UNAVAILABLE, or an error without a code
)

// apiError is one GraphQL error as the API sent it.
type apiError struct {
	Message    string         `json:"message"`
	Extensions map[string]any `json:"extensions,omitempty"`
}

func (e apiError) code() string { s, _ := e.Extensions["code"].(string); return s }
func (e apiError) rule() string { s, _ := e.Extensions["rule"].(string); return s }

// requestError is a request the API answered with errors.
type requestError struct {
	errs []apiError
}

func (e *requestError) Error() string {
	var b strings.Builder
	for i, x := range e.errs {
		if i > 0 {
			b.WriteString("\n")
		}
		if c := x.code(); c != "" {
			b.WriteString(c)
			if r := x.rule(); r != "" {
				b.WriteString(" " + r)
			}
			b.WriteString(": ")
		}
		b.WriteString(x.Message)
	}
	return b.String()
}

// exitCode maps the first error's code to an exit status.
func (e *requestError) exitCode() int {
	switch e.errs[0].code() {
	case "UNAUTHENTICATED", "FORBIDDEN":
		return exitAuth
	case "NOT_FOUND":
		return exitNotFound
	case "VALIDATION", "CONFLICT":
		return exitRefused
	}
	return exitServer
}

// unreachableError is a request that never got an answer from the API.
type unreachableError struct{ err error }

func (e *unreachableError) Error() string { return e.err.Error() }
func (e *unreachableError) Unwrap() error { return e.err }

// usageError is a command line that cannot be run.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

// notFoundError is a lookup by uuid that found nothing.
type notFoundError struct{ what, uuid string }

func (e *notFoundError) Error() string {
	return fmt.Sprintf("NOT_FOUND: no %s has the uuid %s", e.what, e.uuid)
}

// exitStatus is the exit status an error stands for.
func exitStatus(err error) int {
	var re *requestError
	var ue *unreachableError
	var us *usageError
	var nf *notFoundError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &re):
		return re.exitCode()
	case errors.As(err, &ue):
		return exitUnreachable
	case errors.As(err, &us):
		return exitUsage
	case errors.As(err, &nf):
		return exitNotFound
	}
	return exitFailure
}

// client posts GraphQL documents to one endpoint.
type client struct {
	url   string
	token string
	http  *http.Client
}

// connOptions are the global flags that say how to reach the API.
type connOptions struct {
	api, token, tokenFile string
	caCert, cert, key     string
	timeout               time.Duration
}

// Environment variables read when the matching flag is not given.
const (
	envAPI       = "PORTMIRROR_API"
	envToken     = "PORTMIRROR_TOKEN"
	envTokenFile = "PORTMIRROR_TOKEN_FILE"
)

// newClient builds a client from the flags, then the environment: the token from --token, --token-file,
// PORTMIRROR_TOKEN or PORTMIRROR_TOKEN_FILE, in that order.
func newClient(o connOptions) (*client, error) {
	api := o.api
	if api == "" {
		api = os.Getenv(envAPI)
	}
	if api == "" {
		api = "http://127.0.0.1:8080"
	}
	if !strings.HasPrefix(api, "http://") && !strings.HasPrefix(api, "https://") {
		return nil, &usageError{fmt.Sprintf("--api %q: want http://HOST:PORT or https://HOST:PORT", api)}
	}
	api = strings.TrimSuffix(api, "/")
	if !strings.HasSuffix(api, "/graphql") {
		api += "/graphql"
	}
	token := o.token
	tokenFile := o.tokenFile
	if token == "" && tokenFile == "" {
		token = os.Getenv(envToken)
		if token == "" {
			tokenFile = os.Getenv(envTokenFile)
		}
	}
	if token == "" && tokenFile != "" {
		b, err := os.ReadFile(tokenFile)
		if err != nil {
			return nil, &usageError{fmt.Sprintf("--token-file: %v", err)}
		}
		token = strings.TrimSpace(string(b))
	}
	tlsCfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if o.caCert != "" {
		pem, err := os.ReadFile(o.caCert)
		if err != nil {
			return nil, &usageError{fmt.Sprintf("--ca-cert: %v", err)}
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, &usageError{fmt.Sprintf("--ca-cert %s: no PEM certificate in it", o.caCert)}
		}
		tlsCfg.RootCAs = pool
	}
	if (o.cert == "") != (o.key == "") {
		return nil, &usageError{"--cert and --key go together"}
	}
	if o.cert != "" {
		pair, err := tls.LoadX509KeyPair(o.cert, o.key)
		if err != nil {
			return nil, &usageError{fmt.Sprintf("--cert/--key: %v", err)}
		}
		tlsCfg.Certificates = []tls.Certificate{pair}
	}
	return &client{url: api, token: token, http: &http.Client{
		Timeout:   o.timeout,
		Transport: &http.Transport{TLSClientConfig: tlsCfg, ForceAttemptHTTP2: true, Proxy: http.ProxyFromEnvironment},
	}}, nil
}

// do runs a document and decodes its data into out (which may be nil).
func (c *client) do(ctx context.Context, query string, vars map[string]any, out any) error {
	body, err := json.Marshal(map[string]any{"query": query, "variables": vars})
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url, bytes.NewReader(body))
	if err != nil {
		return &usageError{fmt.Sprintf("--api: %v", err)}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return &unreachableError{fmt.Errorf("reaching the API at %s: %w", c.url, err)}
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return &unreachableError{fmt.Errorf("reading the API's answer: %w", err)}
	}
	var r struct {
		Data   json.RawMessage `json:"data"`
		Errors []apiError      `json:"errors"`
	}
	if err := json.Unmarshal(raw, &r); err != nil {
		return fmt.Errorf("the answer of %s (HTTP %d) is not the API's JSON: %.200s", c.url, resp.StatusCode, raw)
	}
	if len(r.Errors) > 0 {
		return &requestError{errs: r.Errors}
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(r.Data, out)
}
