package graphql

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"

	gql "github.com/graphql-go/graphql"
	"github.com/graphql-go/graphql/gqlerrors"
	"github.com/graphql-go/graphql/language/location"

	"portmirror/service"
)

// apiError is how a refusal leaves a resolver: graphql-go copies Extensions() of a resolver's error into the
// response's extensions (gqlerrors.ExtendedError; it asserts the type directly, without errors.As).
type apiError struct {
	code    service.Code
	rule    service.Rule
	message string
}

func (e *apiError) Error() string { return e.message }

func (e *apiError) Extensions() map[string]any {
	ext := map[string]any{"code": string(e.code)}
	if e.rule != "" {
		ext["rule"] = string(e.rule)
	}
	return ext
}

// invalidArgument is a VALIDATION / INVALID_ARGUMENT refusal made by this package before the service is called.
func invalidArgument(msg string) error {
	return &apiError{code: service.CodeValidation, rule: service.RuleInvalidArgument, message: msg}
}

// requestInfo is what the HTTP layer puts into the context of one request for the resolvers.
type requestInfo struct {
	id     string
	logger *slog.Logger
	vars   map[string]any // the request's variables as sent (a null stays a present nil)
}

type requestInfoKey struct{}

func withRequestInfo(ctx context.Context, ri *requestInfo) context.Context {
	return context.WithValue(ctx, requestInfoKey{}, ri)
}

func requestInfoFrom(ctx context.Context) *requestInfo {
	if ri, ok := ctx.Value(requestInfoKey{}).(*requestInfo); ok {
		return ri
	}
	return &requestInfo{id: "-", logger: slog.New(slog.DiscardHandler)}
}

func newRequestID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// toAPIError turns an error of the service into the error a resolver returns. An error that is not a
// *service.Error, or is INTERNAL, is logged with its cause and answered with a message that says where to look.
func toAPIError(ctx context.Context, op string, err error) error {
	if err == nil {
		return nil
	}
	var ae *apiError
	if errors.As(err, &ae) {
		return ae
	}
	se := service.AsError(err)
	if se.Code != service.CodeInternal {
		return &apiError{code: se.Code, rule: se.Rule, message: se.Message}
	}
	ri := requestInfoFrom(ctx)
	ri.logger.LogAttrs(ctx, slog.LevelError, "internal error in GraphQL resolver",
		slog.String("request_id", ri.id), slog.String("field", op), slog.Any("error", err))
	msg := se.Message
	if msg == "" {
		msg = "internal error"
	}
	return &apiError{
		code: service.CodeInternal,
		message: msg + " in " + op + ": a fault of the controller, nothing was acknowledged; see the portmirrord log " +
			"for request_id " + ri.id + " (the cause is logged there)",
	}
}

// requestError is an error of the whole request (malformed, unauthenticated, forbidden...) in GraphQL's shape.
func requestError(code service.Code, rule service.Rule, msg string) gqlerrors.FormattedError {
	e := &apiError{code: code, rule: rule, message: msg}
	return gqlerrors.FormattedError{Message: msg, Locations: []location.SourceLocation{}, Extensions: e.Extensions()}
}

// completeErrors gives every error of a result an extensions.code: graphql-go's own errors have none. An error
// with a path is a fault while completing a field (INTERNAL); one without is a fault of the request (VALIDATION).
func completeErrors(ctx context.Context, res *gql.Result) {
	for i := range res.Errors {
		e := &res.Errors[i]
		if e.Extensions != nil {
			if _, ok := e.Extensions["code"]; ok {
				continue
			}
		}
		if len(e.Path) > 0 {
			ri := requestInfoFrom(ctx)
			ri.logger.LogAttrs(ctx, slog.LevelError, "GraphQL field failed", slog.String("request_id", ri.id),
				slog.Any("path", e.Path), slog.String("error", e.Message))
			e.Extensions = map[string]any{"code": string(service.CodeInternal)}
			e.Message += " (a fault of the controller; see the portmirrord log for request_id " + ri.id + ")"
			continue
		}
		e.Extensions = map[string]any{"code": string(service.CodeValidation), "rule": string(service.RuleInvalidArgument)}
	}
}

// firstCode is the outcome of a result for metrics: "OK" or the code of its first error.
func firstCode(errs []gqlerrors.FormattedError) string {
	if len(errs) == 0 {
		return "OK"
	}
	if c, ok := errs[0].Extensions["code"].(string); ok {
		return c
	}
	return string(service.CodeInternal)
}
