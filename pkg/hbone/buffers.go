package hbone

import "sync"

// frameHeaderLen is the size of an HTTP/2 frame header.
const frameHeaderLen = 9

// bufClasses are the payload sizes of pooled buffers; each buffer also has room for a
// frame header in front.
var bufClasses = [...]int{16 << 10, 64 << 10, 256 << 10, 1 << 20}

var bufPools [len(bufClasses)]sync.Pool

// getBuf returns a pooled buffer of length at least n (its full capacity is usable).
func getBuf(n int) *[]byte {
	for i, c := range bufClasses {
		if n <= c+frameHeaderLen {
			if b, ok := bufPools[i].Get().(*[]byte); ok {
				return b
			}
			b := make([]byte, c+frameHeaderLen)
			return &b
		}
	}
	b := make([]byte, n)
	return &b
}

// putBuf returns b to its pool; nil and odd-sized buffers are dropped.
func putBuf(b *[]byte) {
	if b == nil {
		return
	}
	for i, c := range bufClasses {
		if cap(*b) == c+frameHeaderLen {
			*b = (*b)[:cap(*b)]
			bufPools[i].Put(b)
			return
		}
	}
}

// sizer picks read sizes that follow the traffic: reads start at the smallest buffer
// class, go one class up after a read that filled its buffer and one down after a read
// that used under an eighth of it, never above max. Request/response traffic thus
// touches 16 KiB buffers (and keeps the heap, and so the GC's goal, small), while bulk
// transfers reach max within a few reads.
type sizer struct {
	class int
	max   int
}

// next is the size to read into.
func (z *sizer) next() int { return min(bufClasses[z.class], z.max) }

// observe records a read of n bytes into a buffer of size bytes.
func (z *sizer) observe(n, size int) {
	switch {
	case n >= size && z.class+1 < len(bufClasses) && bufClasses[z.class] < z.max:
		z.class++
	case n < size/8 && z.class > 0:
		z.class--
	}
}
