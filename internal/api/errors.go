package api

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// Error codes. Each maps to one HTTP status.
const (
	CodeInvalid      = "invalid"      // bad name, size, flag: nothing was changed
	CodeNotFound     = "not_found"    // no such VM or image
	CodeConflict     = "conflict"     // already exists, wrong state
	CodePrecondition = "precondition" // a preflight check failed: something is missing on the host
	CodeForbidden    = "forbidden"    // peer is not the owning user
	CodeUnavailable  = "unavailable"  // database busy, daemon shutting down
	CodeInternal     = "internal"     // anything else; logs name what happened
	CodeInterrupted  = "interrupted"  // the operation was cancelled
)

// Error is the one error shape of the API:
// {"error":{"code","message","hint","logs":[paths]}}.
type Error struct {
	Code    string   `json:"code"`
	Message string   `json:"message"`
	Hint    string   `json:"hint,omitempty"`
	Logs    []string `json:"logs,omitempty"`
	// Step names the lifecycle step that failed, when one did.
	Step string `json:"step,omitempty"`
}

// ErrorBody is the JSON envelope of an error response.
type ErrorBody struct {
	Error *Error `json:"error"`
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.Message)
	if e.Hint != "" {
		b.WriteString("\nhint: ")
		b.WriteString(e.Hint)
	}
	for _, l := range e.Logs {
		b.WriteString("\nlog: ")
		b.WriteString(l)
	}
	return b.String()
}

// Is lets errors.Is match on the code: errors.Is(err, api.ErrNotFound).
func (e *Error) Is(target error) bool {
	var t *Error
	if errors.As(target, &t) {
		return t.Code == e.Code && t.Message == ""
	}
	return false
}

// Sentinels for errors.Is checks against client errors.
var (
	ErrInvalid      = &Error{Code: CodeInvalid}
	ErrNotFound     = &Error{Code: CodeNotFound}
	ErrConflict     = &Error{Code: CodeConflict}
	ErrPrecondition = &Error{Code: CodePrecondition}
	ErrForbidden    = &Error{Code: CodeForbidden}
	ErrUnavailable  = &Error{Code: CodeUnavailable}
	ErrInterrupted  = &Error{Code: CodeInterrupted}
)

// Errorf builds an Error with a code and a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// WithHint returns e with a hint set.
func (e *Error) WithHint(format string, args ...any) *Error {
	c := *e
	c.Hint = fmt.Sprintf(format, args...)
	return &c
}

// WithLogs returns e with log paths added.
func (e *Error) WithLogs(paths ...string) *Error {
	c := *e
	c.Logs = append(append([]string(nil), e.Logs...), paths...)
	return &c
}

// HTTPStatus is the status code for an error code.
func HTTPStatus(code string) int {
	switch code {
	case CodeInvalid:
		return http.StatusBadRequest
	case CodeNotFound:
		return http.StatusNotFound
	case CodeConflict:
		return http.StatusConflict
	case CodePrecondition:
		return http.StatusPreconditionFailed
	case CodeForbidden:
		return http.StatusForbidden
	case CodeUnavailable:
		return http.StatusServiceUnavailable
	case CodeInterrupted:
		return 499
	default:
		return http.StatusInternalServerError
	}
}

// AsError converts any error into an API error, keeping an *Error found in
// the chain and wrapping anything else as internal.
func AsError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		if e.Message == "" {
			c := *e
			c.Message = err.Error()
			return &c
		}
		return e
	}
	return &Error{Code: CodeInternal, Message: err.Error()}
}
