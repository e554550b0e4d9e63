// Package plugin is the logic of ambit-cni, a chained CNI plugin (CNI spec ADD, DEL,
// CHECK, STATUS, GC, VERSION) that tells the node agent about pod sandboxes (F-ENROL-2).
// It runs after the primary plugin in a .conflist: ADD posts the pod and its IPs (from
// prevResult) to the agent's socket and waits until the agent has enrolled it, so a pod
// is redirected before its containers start; the previous result passes through
// unchanged. DEL tells the agent to clean up.
package plugin

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"
)

// Conf is the plugin's network configuration (stdin), e.g.
//
//	{"cniVersion":"1.0.0","name":"k8s-pod-network","type":"ambit-cni",
//	 "agentSocket":"/var/run/ambit/cni.sock","failOpen":false,"prevResult":{...}}
type Conf struct {
	types.PluginConf
	// AgentSocket is the node agent's --cni-socket. Required, absolute.
	AgentSocket string `json:"agentSocket"`
	// FailOpen lets ADD succeed (with a warning) when the agent cannot be reached; pods
	// then start outside the mesh. Default false: the pod waits (the runtime retries).
	FailOpen bool `json:"failOpen"`
	// TimeoutSeconds bounds one request to the agent; 0 means 60.
	TimeoutSeconds int `json:"timeoutSeconds"`
}

// ParseConf decodes and validates the stdin config. With needPrevResult (ADD, CHECK)
// a prevResult is required and returned converted to the current result type. Errors
// are *types.Error with the CNI spec's codes: 6 (decoding) or 7 (invalid config).
func ParseConf(data []byte, needPrevResult bool) (*Conf, *current.Result, error) {
	conf := &Conf{}
	if err := json.Unmarshal(data, conf); err != nil {
		return nil, nil, types.NewError(types.ErrDecodingFailure, "ambit-cni: decode config: "+err.Error(), "")
	}
	switch {
	case conf.CNIVersion == "":
		return nil, nil, invalidConf("cniVersion is required")
	case conf.AgentSocket == "" || !filepath.IsAbs(conf.AgentSocket):
		return nil, nil, invalidConf(fmt.Sprintf("agentSocket must be an absolute path, got %q", conf.AgentSocket))
	case conf.TimeoutSeconds < 0:
		return nil, nil, invalidConf("timeoutSeconds must not be negative")
	}
	if !needPrevResult {
		return conf, nil, nil
	}
	if conf.RawPrevResult == nil {
		return nil, nil, invalidConf("prevResult is required: ambit-cni must be chained after the primary plugin")
	}
	if err := version.ParsePrevResult(&conf.PluginConf); err != nil {
		return nil, nil, types.NewError(types.ErrDecodingFailure, "ambit-cni: decode prevResult: "+err.Error(), "")
	}
	res, err := current.NewResultFromResult(conf.PrevResult)
	if err != nil {
		return nil, nil, types.NewError(types.ErrDecodingFailure, "ambit-cni: convert prevResult: "+err.Error(), "")
	}
	return conf, res, nil
}

func invalidConf(msg string) *types.Error {
	return types.NewError(types.ErrInvalidNetworkConfig, "ambit-cni: "+msg, "")
}

// K8sArgs are the Kubernetes fields of CNI_ARGS that kubelet/containerd pass.
type K8sArgs struct {
	Namespace string // K8S_POD_NAMESPACE
	Name      string // K8S_POD_NAME
	UID       string // K8S_POD_UID
}

// ParseArgs parses CNI_ARGS ("K=V;K=V"); unknown keys are ignored, a pair without "="
// is an error (CNI code 4).
func ParseArgs(s string) (K8sArgs, error) {
	var a K8sArgs
	if s == "" {
		return a, nil
	}
	for _, pair := range strings.Split(s, ";") {
		if pair == "" {
			continue
		}
		k, v, ok := strings.Cut(pair, "=")
		if !ok {
			return K8sArgs{}, types.NewError(types.ErrInvalidEnvironmentVariables, fmt.Sprintf("ambit-cni: CNI_ARGS: malformed pair %q", pair), "")
		}
		switch k {
		case "K8S_POD_NAMESPACE":
			a.Namespace = v
		case "K8S_POD_NAME":
			a.Name = v
		case "K8S_POD_UID":
			a.UID = v
		}
	}
	return a, nil
}
