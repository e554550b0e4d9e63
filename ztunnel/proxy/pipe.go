package proxy

import (
	"errors"
	"io"
	"net"
	"sync"
)

// pipe copies a->b and b->a until both directions end, half-closing each side as its
// peer finishes. It returns bytes copied a->b and b->a. Between two TCP sockets io.Copy
// uses splice(2), so passthrough bytes never enter user space.
func pipe(a, b net.Conn) (ab, ba int64, err error) {
	var wg sync.WaitGroup
	var errBA error
	wg.Add(1)
	go func() {
		defer wg.Done()
		ba, errBA = copyHalf(a, b)
	}()
	ab, err = copyHalf(b, a)
	wg.Wait()
	return ab, ba, errors.Join(err, errBA)
}

// copyHalf copies src to dst then half-closes dst (or closes it when half-close is not
// supported). A reset on either side closes both so the other direction ends too.
func copyHalf(dst, src net.Conn) (int64, error) {
	n, err := io.Copy(dst, src)
	if cw, ok := dst.(interface{ CloseWrite() error }); ok && err == nil {
		cw.CloseWrite()
	} else {
		dst.Close()
		src.Close()
	}
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	return n, err
}
