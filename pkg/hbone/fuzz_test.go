package hbone

import (
	"bytes"
	"context"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

func FuzzParseAuthority(f *testing.F) {
	for _, s := range []string{"10.0.0.1:80", "[fd00::1]:8080", "[fe80::1%eth0]:80", "host:80", "1.2.3.4", ":80", "1.2.3.4:0", "[::ffff:1.2.3.4]:1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ap, err := ParseAuthority(s)
		if err != nil {
			return
		}
		again, err := ParseAuthority(ap.String())
		if err != nil || again != ap {
			t.Fatalf("ParseAuthority(%q) = %v, but %q reparses as %v, %v", s, ap, ap.String(), again, err)
		}
		if ap.Port() == 0 || ap.Addr().Zone() != "" {
			t.Fatalf("ParseAuthority(%q) accepted %v", s, ap)
		}
	})
}

// memConn is a server-side connection reading a fixed byte stream and discarding
// writes.
type memConn struct {
	r *bytes.Reader
}

func (m *memConn) Read(p []byte) (int, error)         { return m.r.Read(p) }
func (m *memConn) Write(p []byte) (int, error)        { return len(p), nil }
func (m *memConn) Close() error                       { return nil }
func (m *memConn) LocalAddr() net.Addr                { return &net.TCPAddr{} }
func (m *memConn) RemoteAddr() net.Addr               { return &net.TCPAddr{} }
func (m *memConn) SetDeadline(t time.Time) error      { return nil }
func (m *memConn) SetReadDeadline(t time.Time) error  { return nil }
func (m *memConn) SetWriteDeadline(t time.Time) error { return nil }

// nullConn is an upstream that swallows writes and reads EOF once closed or given a
// deadline (the stream's abort wakes its reader with SetDeadline, as for a real conn).
type nullConn struct {
	memConn
	once sync.Once
	done chan struct{}
}

func newNullConn() *nullConn { return &nullConn{done: make(chan struct{})} }

func (n *nullConn) Read(p []byte) (int, error)        { <-n.done; return 0, io.EOF }
func (n *nullConn) Close() error                      { n.once.Do(func() { close(n.done) }); return nil }
func (n *nullConn) SetReadDeadline(t time.Time) error { return n.Close() }
func (n *nullConn) SetDeadline(t time.Time) error     { return n.Close() }

// frames encodes a client's frames for fuzz seeds.
func frames(write func(fr *http2.Framer, enc func(...string) []byte)) []byte {
	var buf, hb bytes.Buffer
	fr := http2.NewFramer(&buf, nil)
	henc := hpack.NewEncoder(&hb)
	enc := func(kv ...string) []byte {
		hb.Reset()
		for i := 0; i+1 < len(kv); i += 2 {
			_ = henc.WriteField(hpack.HeaderField{Name: kv[i], Value: kv[i+1]})
		}
		return bytes.Clone(hb.Bytes())
	}
	write(fr, enc)
	return buf.Bytes()
}

// FuzzServeFrames feeds arbitrary bytes, after the client preface and SETTINGS, to a
// server connection without TLS: it must never panic or hang.
func FuzzServeFrames(f *testing.F) {
	f.Add(frames(func(fr *http2.Framer, enc func(...string) []byte) {
		_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, EndHeaders: true,
			BlockFragment: enc(":method", "CONNECT", ":authority", "10.0.0.1:80", "baggage", "x")})
		_ = fr.WriteData(1, false, []byte("hello"))
		_ = fr.WriteWindowUpdate(0, 1000)
		_ = fr.WritePing(false, [8]byte{1})
		_ = fr.WriteData(1, true, nil)
	}))
	f.Add(frames(func(fr *http2.Framer, enc func(...string) []byte) {
		_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 3, EndHeaders: false,
			BlockFragment: enc(":method", "GET", ":path", "/")})
		_ = fr.WriteContinuation(3, true, enc("x", "y"))
		_ = fr.WriteRSTStream(3, http2.ErrCodeCancel)
		_ = fr.WriteDataPadded(5, false, []byte("x"), []byte{0, 0})
		_ = fr.WriteGoAway(0, http2.ErrCodeNo, nil)
	}))
	f.Add(frames(func(fr *http2.Framer, enc func(...string) []byte) {
		_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, EndHeaders: true, EndStream: true,
			BlockFragment: enc(":method", "CONNECT", ":authority", "10.0.0.2:1")})
		_ = fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1 << 30})
		_ = fr.WriteWindowUpdate(1, 1<<31-1)
	}))
	prefix := append([]byte(http2.ClientPreface), frames(func(fr *http2.Framer, _ func(...string) []byte) {
		_ = fr.WriteSettings()
	})...)
	srv := NewServer(ServerConfig{TrustDomain: "cluster.local",
		Connect: func(ctx context.Context, r *ServerRequest) (net.Conn, error) {
			if r.Authority.Port() == 1 {
				return nil, ErrDenied
			}
			return newNullConn(), nil
		}})
	f.Fuzz(func(t *testing.T, data []byte) {
		in := append(bytes.Clone(prefix), data...)
		done := make(chan struct{})
		go func() {
			defer close(done)
			srv.serveH2(context.Background(), &memConn{r: bytes.NewReader(in)}, nil, clientID, nil)
		}()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("serveH2 did not return")
		}
	})
}
