// Command ambit-echo is the sample application of the demo and the
// end-to-end tests: an HTTP + raw TCP echo server and matching clients that
// print one JSON line per exchange. See package e2e/echo and `ambit-echo --help`.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/ambitmesh/ambit/e2e/echo"
)

const usage = `usage:
  ambit-echo server --name POD [--http :8080] [--tcp :9000]
      HTTP: any path answers {"pod","peer","path","bytes","method","host"}.
      TCP: writes "pod=<name> peer=<ip:port>\n", then echoes until the client half-closes.
  ambit-echo http --url URL [--count N] [--body MARKER] [--keepalive] [--header 'K: V']... [--timeout 5s]
      One request per count (a new connection each unless --keepalive; POST when --body is set);
      prints one JSON line per response: the server's JSON plus "status" and "error".
  ambit-echo tcp --addr IP:PORT [--count N] [--payload MARKER] [--timeout 5s] [--hold 30s]
      Reads the greeting, sends the payload, half-closes, checks the echo;
      prints {"pod","peer","ok","bytes","error"} per connection.
Clients exit 1 when any exchange failed, 2 on bad usage.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run executes one subcommand and returns the process exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stderr, usage)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	fs := flag.NewFlagSet("ambit-echo "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage) }
	var cmd func() (int, error)
	switch args[0] {
	case "server":
		s := &echo.Server{Log: log.New(stderr, "ambit-echo: ", log.LstdFlags)}
		fs.StringVar(&s.Name, "name", "", "pod name reported in every answer (required)")
		fs.StringVar(&s.HTTPAddr, "http", ":8080", "HTTP listen address (empty disables)")
		fs.StringVar(&s.TCPAddr, "tcp", ":9000", "TCP echo listen address (empty disables)")
		cmd = func() (int, error) {
			if s.Name == "" {
				return 2, errors.New("--name is required")
			}
			return 1, s.Run(ctx)
		}
	case "http":
		o := echo.HTTPOptions{Header: http.Header{}}
		fs.StringVar(&o.URL, "url", "", "URL to request (required)")
		fs.IntVar(&o.Count, "count", 1, "number of requests")
		fs.StringVar(&o.Body, "body", "", "request body (sends a POST)")
		fs.BoolVar(&o.KeepAlive, "keepalive", false, "reuse connections")
		fs.DurationVar(&o.Timeout, "timeout", 5*time.Second, "per-request timeout")
		fs.Func("header", "request header 'Name: value' (repeatable; Host sets the host)", func(v string) error {
			k, val, ok := strings.Cut(v, ":")
			if !ok || strings.TrimSpace(k) == "" {
				return fmt.Errorf("header %q is not 'Name: value'", v)
			}
			o.Header.Add(strings.TrimSpace(k), strings.TrimSpace(val))
			return nil
		})
		cmd = func() (int, error) { return exitCode(echo.RunHTTP(ctx, o, stdout)) }
	case "tcp":
		var o echo.TCPOptions
		fs.StringVar(&o.Addr, "addr", "", "IP:PORT to connect to (required)")
		fs.IntVar(&o.Count, "count", 1, "number of connections")
		fs.StringVar(&o.Payload, "payload", "", "payload to send (default \"ambit-echo\")")
		fs.DurationVar(&o.Timeout, "timeout", 5*time.Second, "per-connection timeout")
		fs.DurationVar(&o.Hold, "hold", 0, "keep each connection open this long, exchanging the payload every 100ms")
		cmd = func() (int, error) { return exitCode(echo.RunTCP(ctx, o, stdout)) }
	default:
		fmt.Fprintf(stderr, "ambit-echo: unknown command %q\n%s", args[0], usage)
		return 2
	}
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() != 0 {
		fmt.Fprintf(stderr, "ambit-echo: unexpected arguments %q\n", fs.Args())
		return 2
	}
	code, err := cmd()
	if err != nil {
		fmt.Fprintf(stderr, "ambit-echo: %v\n", err)
		return code
	}
	return 0
}

// exitCode maps a client's (failures, error) to an exit code.
func exitCode(failures int, err error) (int, error) {
	switch {
	case err != nil:
		return 2, err
	case failures > 0:
		return 1, fmt.Errorf("%d exchange(s) failed", failures)
	default:
		return 0, nil
	}
}
