// Package echo is the sample application of the demo and the end-to-end
// tests (binary e2e/cmd/ambit-echo): a server that answers HTTP with a JSON
// description of the request and echoes raw TCP after a greeting line, and
// clients that print one JSON line per exchange so that scripts and tests can
// check which pod answered and which peer address it saw.
package echo
