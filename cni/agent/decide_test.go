package agent

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func ns(labels map[string]string) *corev1.Namespace {
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "apps", Labels: labels}}
}

func podWith(labels map[string]string, hostNetwork bool) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "apps", Labels: labels}, Spec: corev1.PodSpec{HostNetwork: hostNetwork}}
}

func TestDecide(t *testing.T) {
	ambient := map[string]string{"istio.io/dataplane-mode": "ambient"}
	none := map[string]string{"istio.io/dataplane-mode": "none"}
	cases := []struct {
		name string
		ns   *corev1.Namespace
		pod  *corev1.Pod
		want bool
	}{
		{"namespace ambient", ns(ambient), podWith(nil, false), true},
		{"namespace unlabelled", ns(nil), podWith(nil, false), false},
		{"namespace other value", ns(map[string]string{"istio.io/dataplane-mode": "sidecar"}), podWith(nil, false), false},
		{"pod label ambient in plain namespace", ns(nil), podWith(ambient, false), true},
		{"pod opts out of ambient namespace", ns(ambient), podWith(none, false), false},
		{"hostNetwork never", ns(ambient), podWith(nil, true), false},
		{"hostNetwork with pod label", ns(nil), podWith(ambient, true), false},
		{"pod not in config", ns(ambient), nil, false},
		{"namespace not in config", nil, podWith(nil, false), false},
		{"namespace missing, pod label", nil, podWith(ambient, false), true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := Decide(tc.ns, tc.pod); got.Enrol != tc.want {
				t.Fatalf("Decide = %+v, want enrol %v", got, tc.want)
			}
		})
	}
}

func TestFindCgroup(t *testing.T) {
	const uid = "1234-abcd-5678"
	cases := []struct {
		name    string
		dirs    []string
		want    string
		wantErr error
	}{
		{"cgroupfs", []string{"kubepods/burstable/pod" + uid + "/ctr1"}, "kubepods/burstable/pod" + uid, nil},
		{"cgroupfs besteffort top", []string{"kubepods/pod" + uid}, "kubepods/pod" + uid, nil},
		{"systemd", []string{"kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1234_abcd_5678.slice/cri-x.scope"},
			"kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1234_abcd_5678.slice", nil},
		{"other pod only", []string{"kubepods/podffff"}, "", ErrCgroupNotFound},
		{"prefix is not a match", []string{"kubepods/pod" + uid + "0"}, "", ErrCgroupNotFound},
		{"too deep", []string{"a/b/c/d/e/f/g/pod" + uid}, "", ErrCgroupNotFound},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			for _, d := range tc.dirs {
				if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			got, err := FindCgroup(root, uid)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil || got != filepath.Join(root, tc.want) {
				t.Fatalf("FindCgroup = %q, %v; want %q", got, err, filepath.Join(root, tc.want))
			}
		})
	}
}

func TestFirstIPv4(t *testing.T) {
	ip, ok := firstIPv4([]string{"fd00::1", "10.20.1.5"})
	if !ok || ip.String() != "10.20.1.5" {
		t.Fatalf("firstIPv4 = %v %v", ip, ok)
	}
	if _, ok := firstIPv4([]string{"fd00::1"}); ok {
		t.Fatal("IPv6-only accepted")
	}
}
