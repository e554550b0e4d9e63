// Package hbone implements HBONE, the mesh tunnel of Istio ambient: one HTTP/2 CONNECT
// stream per proxied TCP connection, carried over mutual TLS 1.3 between workload
// identities (spiffe://<td>/ns/<ns>/sa/<sa>), on port 15008 of the destination pod.
//
// The Client dials, pools and multiplexes tunnel connections (many streams per TLS
// connection, keyed by address and acceptable server identities); the Server accepts
// them, verifies the peer and hands each CONNECT stream to a callback that dials the
// application. Both sides speak HTTP/2 with their own small stream multiplexer built on
// golang.org/x/net/http2's Framer and hpack, not on net/http, because the data path
// dominates the cost of a node proxy:
//
//   - received DATA frames are written whole to the application socket straight from
//     the connection's read loop with one non-blocking write; only what does not fit is
//     queued for a per-stream writer goroutine (no cross-stream head-of-line blocking);
//   - sent DATA frames carry their 9-byte header in the same buffer as the payload and
//     go out with one tls.Conn.Write, whose TLS records are batched into one write(2);
//   - windows are 8 MiB per stream and 32 MiB per connection, frames up to 1 MiB;
//   - buffers come from size-classed sync.Pools, no allocation per frame, and reads
//     size them to the traffic: small exchanges use 16 KiB buffers, bulk ones 1 MiB;
//   - socket reads and writes are raw non-blocking syscalls that skip the runtime's
//     syscall bookkeeping, which at a thousand small requests a second kept waking the
//     runtime's sysmon thread and cost more CPU than the data path itself.
//
// Wire behaviour follows Istio's ztunnel: 200 only after the upstream connect
// succeeded, 400 for a malformed request, 401 when denied, 503 when the upstream
// connect failed; END_STREAM maps to a TCP half-close (CloseWrite) and back.
package hbone
