package kubelet

import "testing"

func TestTranslate(t *testing.T) {
	mounts := []mount{ // longest first, as argv sorts them
		{"/var/run/ztunnel", "/node/var/run/ztunnel"},
		{"/usr/local/bin", "/tmp/ci/bin"},
		{"/tmp", "/pod/volumes/tmp"},
	}
	for _, tc := range []struct{ in, want string }{
		{"/usr/local/bin/ztunnel", "/tmp/ci/bin/ztunnel"},
		{"--zds-socket=/var/run/ztunnel/ztunnel.sock", "--zds-socket=/node/var/run/ztunnel/ztunnel.sock"},
		{"/tmp", "/pod/volumes/tmp"},
		{"/tmpfoo/x", "/tmpfoo/x"},
		{"--dirs=/tmp/a,/var/run/ztunnel", "--dirs=/pod/volumes/tmp/a,/node/var/run/ztunnel"},
		{"relative/tmp/x", "relative/tmp/x"},
		{"no paths", "no paths"},
	} {
		if got := translate(tc.in, mounts); got != tc.want {
			t.Errorf("translate(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
