package plugin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/ambitmesh/ambit/cni/agent/podapi"
)

// Versions are the CNI spec versions the plugin supports (chaining needs ≥ 0.3.0).
var Versions = version.PluginSupports("0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")

// About is printed by the plugin when run without CNI_COMMAND.
const About = "ambit-cni: enrols pods into the Ambit mesh via the node agent"

// Plugin runs the CNI commands. The zero value writes to os.Stdout and os.Stderr.
type Plugin struct {
	Stdout io.Writer // where ADD prints its result
	Stderr io.Writer // warnings and logs (the runtime keeps them)
}

// Funcs returns the commands for skel.PluginMainFuncs.
func (p *Plugin) Funcs() skel.CNIFuncs {
	return skel.CNIFuncs{Add: p.Add, Del: p.Del, Check: p.Check, Status: p.Status, GC: p.GC}
}

func (p *Plugin) stdout() io.Writer {
	if p.Stdout == nil {
		return os.Stdout
	}
	return p.Stdout
}

func (p *Plugin) logf(format string, args ...any) {
	w := p.Stderr
	if w == nil {
		w = os.Stderr
	}
	fmt.Fprintf(w, "ambit-cni: "+format+"\n", args...)
}

func client(conf *Conf) *podapi.Client {
	return podapi.NewClient(conf.AgentSocket, time.Duration(conf.TimeoutSeconds)*time.Second)
}

// Add posts the pod to the agent and prints prevResult unchanged on success. Pods
// without Kubernetes args are passed through. Agent unreachable: error code 11 (try
// again later) unless failOpen; agent failure: code 999 with the agent's message.
func (p *Plugin) Add(args *skel.CmdArgs) error {
	conf, prev, err := ParseConf(args.StdinData, true)
	if err != nil {
		return err
	}
	k8s, err := ParseArgs(args.Args)
	if err != nil {
		return err
	}
	if k8s.Namespace == "" || k8s.Name == "" {
		p.logf("container %s is not a Kubernetes pod; nothing to do", args.ContainerID)
		return printAs(prev, conf.CNIVersion, p.stdout())
	}
	if k8s.UID == "" {
		return types.NewError(types.ErrInvalidEnvironmentVariables, "ambit-cni: K8S_POD_UID missing from CNI_ARGS", "")
	}
	req := podapi.AddRequest{UID: k8s.UID, Name: k8s.Name, Namespace: k8s.Namespace, Netns: args.Netns, ContainerID: args.ContainerID}
	for _, ip := range prev.IPs {
		req.IPs = append(req.IPs, ip.Address.IP.String())
	}
	err = client(conf).Add(context.Background(), req)
	switch {
	case err == nil:
	case errors.Is(err, podapi.ErrUnreachable) && conf.FailOpen:
		p.logf("WARNING: node agent unreachable, pod %s/%s starts outside the mesh (failOpen): %v", k8s.Namespace, k8s.Name, err)
	case errors.Is(err, podapi.ErrUnreachable):
		return types.NewError(types.ErrTryAgainLater, "ambit-cni: node agent unreachable", err.Error())
	default:
		return types.NewError(types.ErrInternal, "ambit-cni: enrol pod "+k8s.Namespace+"/"+k8s.Name, err.Error())
	}
	return printAs(prev, conf.CNIVersion, p.stdout())
}

func printAs(res types.Result, ver string, w io.Writer) error {
	out, err := res.GetAsVersion(ver)
	if err != nil {
		return types.NewError(types.ErrIncompatibleCNIVersion, "ambit-cni: convert result to "+ver, err.Error())
	}
	return out.PrintTo(w)
}

// Del tells the agent the sandbox is gone. An unreachable agent is logged, not an error
// (the agent reconciles on restart); an agent that fails the cleanup yields an error so
// the runtime retries.
func (p *Plugin) Del(args *skel.CmdArgs) error {
	conf, _, err := ParseConf(args.StdinData, false)
	if err != nil {
		return err
	}
	k8s, err := ParseArgs(args.Args)
	if err != nil {
		return err
	}
	if k8s.UID == "" && args.ContainerID == "" {
		return nil
	}
	err = client(conf).Del(context.Background(), podapi.DelRequest{UID: k8s.UID, ContainerID: args.ContainerID})
	switch {
	case err == nil:
		return nil
	case errors.Is(err, podapi.ErrUnreachable):
		p.logf("node agent unreachable on DEL of %s (uid %q); it cleans up on restart: %v", args.ContainerID, k8s.UID, err)
		return nil
	default:
		return types.NewError(types.ErrInternal, "ambit-cni: clean up pod", err.Error())
	}
}

// Check validates the config and prevResult; enrolment itself is the agent's to keep.
func (p *Plugin) Check(args *skel.CmdArgs) error {
	_, _, err := ParseConf(args.StdinData, true)
	return err
}

// Status validates the config (CNI 1.1 STATUS); readiness follows the agent's socket.
func (p *Plugin) Status(args *skel.CmdArgs) error {
	conf, _, err := ParseConf(args.StdinData, false)
	if err != nil {
		return err
	}
	if _, err := os.Stat(conf.AgentSocket); err != nil && !conf.FailOpen {
		return types.NewError(types.ErrPluginNotAvailable, "ambit-cni: node agent socket missing", err.Error())
	}
	return nil
}

// GC validates the config; the agent garbage-collects its own state.
func (p *Plugin) GC(args *skel.CmdArgs) error {
	_, _, err := ParseConf(args.StdinData, false)
	return err
}
