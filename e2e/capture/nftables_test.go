package capture

import (
	"errors"
	"slices"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

func tableMsg(family uint8, name string) []byte {
	attrs := append(nlAttr(unix.NFTA_TABLE_NAME, append([]byte(name), 0)), nlAttr(2, []byte{0, 0, 0, 0})...)
	return nfMessage(nfMsgType(unix.NFT_MSG_NEWTABLE), unix.NLM_F_MULTI, 1, family, 0, attrs)
}

func doneMsg() []byte {
	b := nfMessage(unix.NLMSG_DONE, unix.NLM_F_MULTI, 1, 0, 0, nil)
	return b
}

func errMsg(errno int32) []byte {
	b := nfMessage(unix.NLMSG_ERROR, 0, 1, 0, 0, nil)
	e := uint32(-errno)
	b[16], b[17], b[18], b[19] = byte(e), byte(e>>8), byte(e>>16), byte(e>>24)
	return b
}

func TestParseTableDump(t *testing.T) {
	cat := func(parts ...[]byte) []byte { return slices.Concat(parts...) }
	for _, tc := range []struct {
		name    string
		in      []byte
		tables  []string
		done    bool
		wantErr error
		anyErr  bool
	}{
		{name: "empty done", in: doneMsg(), done: true},
		{name: "two tables", in: cat(tableMsg(unix.NFPROTO_INET, "ambit"), tableMsg(unix.NFPROTO_IPV4, "nat"), doneMsg()), tables: []string{"inet ambit", "ip nat"}, done: true},
		{name: "partial", in: tableMsg(unix.NFPROTO_BRIDGE, "f"), tables: []string{"bridge f"}},
		{name: "kernel error", in: errMsg(int32(unix.EPERM)), wantErr: syscall.EPERM},
		{name: "ack", in: errMsg(0), done: true},
		{name: "short header", in: []byte{1, 2, 3}, anyErr: true},
		{name: "bad length", in: func() []byte { b := doneMsg(); b[0] = 200; return b }(), anyErr: true},
		{name: "table without name", in: nfMessage(nfMsgType(unix.NFT_MSG_NEWTABLE), 0, 1, 1, 0, nlAttr(2, []byte{1, 2, 3, 4})), anyErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tables, done, err := parseTableDump(tc.in)
			if tc.wantErr != nil && !errors.Is(err, tc.wantErr) || tc.anyErr && err == nil || !tc.anyErr && tc.wantErr == nil && err != nil {
				t.Fatalf("err = %v", err)
			}
			if err == nil && (!slices.Equal(tables, tc.tables) || done != tc.done) {
				t.Fatalf("parseTableDump = %v, %v", tables, done)
			}
		})
	}
}

func FuzzParseTableDump(f *testing.F) {
	f.Add(slices.Concat(tableMsg(unix.NFPROTO_INET, "ambit"), doneMsg()))
	f.Add(errMsg(int32(unix.ENOENT)))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _, _ = parseTableDump(b) // must not panic
	})
}
