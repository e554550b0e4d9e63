package hbone

import (
	"errors"
	"fmt"
	"net/http"

	"golang.org/x/net/http2"
)

// Sentinel errors. Callers branch on them with errors.Is.
var (
	// ErrBadRequest, wrapped by a ServerConfig.Connect error, answers 400
	// (as ztunnel: malformed request or an authority this pod does not own).
	ErrBadRequest = errors.New("hbone: bad request")
	// ErrDenied, wrapped by a ServerConfig.Connect error, answers 401 (as ztunnel on
	// an authorization policy deny).
	ErrDenied = errors.New("hbone: denied")

	// ErrNoPeerCertificate: the peer presented no certificate.
	ErrNoPeerCertificate = errors.New("hbone: peer presented no certificate")
	// ErrUntrustedPeer: the peer's chain does not verify to the mesh roots.
	ErrUntrustedPeer = errors.New("hbone: peer certificate not trusted")
	// ErrExpired: the peer's certificate (or a certificate of its chain) is expired or
	// not yet valid.
	ErrExpired = errors.New("hbone: peer certificate expired or not yet valid")
	// ErrTrustDomain: the peer's SPIFFE trust domain is not ours.
	ErrTrustDomain = errors.New("hbone: peer trust domain mismatch")
	// ErrIdentityMismatch: the server's identity is not one the client expects.
	ErrIdentityMismatch = errors.New("hbone: peer identity mismatch")
	// ErrProtocol: the TLS session does not meet HBONE's requirements (TLS 1.3,
	// AES-GCM, ALPN h2).
	ErrProtocol = errors.New("hbone: tls parameters not acceptable")

	// ErrClientClosed is returned by Client methods after Close.
	ErrClientClosed = errors.New("hbone: client closed")
	// ErrConnClosed: the tunnel connection carrying the stream closed.
	ErrConnClosed = errors.New("hbone: tunnel connection closed")
	// ErrStreamReset: the peer reset the stream (RST_STREAM) or it was cancelled.
	ErrStreamReset = errors.New("hbone: stream reset")
	// errRefused marks a stream the peer did not process (REFUSED_STREAM, or beyond a
	// GOAWAY's last stream); Dial retries it on another connection.
	errRefused = errors.New("hbone: stream refused")
	// errWriteAfterEnd: a write after CloseWrite.
	errWriteAfterEnd = errors.New("hbone: write after close-write")
)

// StatusError is returned by Client.Dial and Client.Proxy when the server answers the
// CONNECT with a status other than 200 (400 bad request, 401 denied, 503 upstream
// connect failed, as ztunnel).
type StatusError struct {
	Code int
}

// Error formats the status, e.g. "hbone: connect status 503 Service Unavailable".
func (e *StatusError) Error() string {
	return fmt.Sprintf("hbone: connect status %d %s", e.Code, http.StatusText(e.Code))
}

// resetError builds the error for a stream reset with code.
func resetError(code http2.ErrCode) error {
	if code == http2.ErrCodeRefusedStream {
		return fmt.Errorf("%w: %w (%v)", errRefused, ErrStreamReset, code)
	}
	return fmt.Errorf("%w: %v", ErrStreamReset, code)
}

// statusFor maps a Connect error to the response status, as ztunnel.
func statusFor(err error) int {
	switch {
	case err == nil:
		return http.StatusOK
	case errors.Is(err, ErrBadRequest):
		return http.StatusBadRequest
	case errors.Is(err, ErrDenied):
		return http.StatusUnauthorized
	default:
		return http.StatusServiceUnavailable
	}
}
