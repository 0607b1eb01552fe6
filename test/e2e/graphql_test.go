package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"
)

// GraphQLClient posts GraphQL documents to one endpoint.
type GraphQLClient struct {
	URL   string       // e.g. http://127.0.0.1:PORT/graphql
	Token string       // sent as "Authorization: Bearer <Token>" when set
	HTTP  *http.Client // nil: a client with a 30s timeout
}

// GraphQLError is one entry of a response's "errors".
type GraphQLError struct {
	Message    string         `json:"message"`
	Path       []any          `json:"path,omitempty"`
	Extensions map[string]any `json:"extensions,omitempty"`
}

// Code returns extensions.code ("" if absent).
func (e GraphQLError) Code() string { s, _ := e.Extensions["code"].(string); return s }

// Rule returns extensions.rule ("" if absent).
func (e GraphQLError) Rule() string { s, _ := e.Extensions["rule"].(string); return s }

// GraphQLErrors is a response's "errors", as an error. Status is the HTTP status.
type GraphQLErrors struct {
	Status int
	Errors []GraphQLError
}

func (e *GraphQLErrors) Error() string {
	parts := make([]string, len(e.Errors))
	for i, g := range e.Errors {
		parts[i] = g.Message
		if c := g.Code(); c != "" {
			parts[i] += " [" + c
			if r := g.Rule(); r != "" {
				parts[i] += "/" + r
			}
			parts[i] += "]"
		}
	}
	return fmt.Sprintf("graphql (HTTP %d): %s", e.Status, strings.Join(parts, "; "))
}

// ErrorCode returns extensions.code of the first GraphQL error in err, "" if none.
func ErrorCode(err error) string {
	var ge *GraphQLErrors
	if errors.As(err, &ge) && len(ge.Errors) > 0 {
		return ge.Errors[0].Code()
	}
	return ""
}

// ErrorRule returns extensions.rule of the first GraphQL error in err, "" if none.
func ErrorRule(err error) string {
	var ge *GraphQLErrors
	if errors.As(err, &ge) && len(ge.Errors) > 0 {
		return ge.Errors[0].Rule()
	}
	return ""
}

// Do posts query with variables and decodes "data" into out (when out is not nil
// and data is not null). A response with "errors" returns *GraphQLErrors (data, if
// any, is still decoded); a non-JSON or non-2xx response without errors returns an
// error quoting the body.
func (c *GraphQLClient) Do(ctx context.Context, query string, vars map[string]any, out any) error {
	_, err := c.DoExt(ctx, query, vars, out)
	return err
}

// DoExt is Do that also returns the response's top-level "extensions" (nil when
// absent), e.g. {"stale": true, "staleReason": ...} from a controller that reaches
// no leader.
func (c *GraphQLClient) DoExt(ctx context.Context, query string, vars map[string]any, out any) (map[string]any, error) {
	body, err := json.Marshal(map[string]any{"query": query, "variables": vars})
	if err != nil {
		return nil, fmt.Errorf("graphql: encode request: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.URL, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("graphql: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	hc := c.HTTP
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("graphql: %w", err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, fmt.Errorf("graphql: read response: %w", err)
	}
	var r struct {
		Data       json.RawMessage `json:"data"`
		Errors     []GraphQLError  `json:"errors"`
		Extensions map[string]any  `json:"extensions"`
	}
	if err := json.Unmarshal(raw, &r); err != nil {
		return nil, fmt.Errorf("graphql: HTTP %d, not a GraphQL response: %.300q", resp.StatusCode, raw)
	}
	if out != nil && len(r.Data) > 0 && string(r.Data) != "null" {
		if err := json.Unmarshal(r.Data, out); err != nil {
			return nil, fmt.Errorf("graphql: decode data into %T: %w", out, err)
		}
	}
	if len(r.Errors) > 0 {
		return r.Extensions, &GraphQLErrors{Status: resp.StatusCode, Errors: r.Errors}
	}
	if resp.StatusCode/100 != 2 {
		return nil, fmt.Errorf("graphql: HTTP %d without errors: %.300q", resp.StatusCode, raw)
	}
	return r.Extensions, nil
}

// Must is Do that fails the test on any error.
func (c *GraphQLClient) Must(t testing.TB, query string, vars map[string]any, out any) {
	t.Helper()
	if err := c.Do(t.Context(), query, vars, out); err != nil {
		t.Fatalf("%v\nquery: %s\nvariables: %v", err, query, vars)
	}
}

// Eventually polls query until cond holds for the decoded data, and fails the test
// after timeout with cond's last reason. out (a pointer) is zeroed before each
// decode; cond reads it. GraphQL errors count as "not yet" and are reported on
// timeout.
func (c *GraphQLClient) Eventually(t testing.TB, timeout time.Duration, query string, vars map[string]any, out any, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		reflect.ValueOf(out).Elem().SetZero()
		err := c.Do(t.Context(), query, vars, out)
		why := ""
		if err == nil {
			var ok bool
			if ok, why = cond(); ok {
				return
			}
		} else {
			why = err.Error()
		}
		if time.Now().After(deadline) {
			t.Fatalf("not true after %v: %s\nquery: %s\nvariables: %v", timeout, why, query, vars)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
