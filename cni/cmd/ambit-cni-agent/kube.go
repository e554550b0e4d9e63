package main

import (
	"errors"
	"flag"
	"github.com/ambitmesh/ambit/pkg/kubeclient"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"

	"github.com/ambitmesh/ambit/cni/agent"
	"github.com/ambitmesh/ambit/cni/install"
	"github.com/ambitmesh/ambit/cni/kube"
)

// kubeFlags are the Kubernetes-mode flags of contracts.md, plus --ztunnel-down-policy.
type kubeFlags struct {
	kubeconfig  string
	confDir     string
	binDir      string
	pluginPath  string
	installCNI  optBool
	ztunnelDown string
}

func addKubeFlags(fs *flag.FlagSet) *kubeFlags {
	k := &kubeFlags{}
	fs.StringVar(&k.kubeconfig, "kubeconfig", "", "kubeconfig file: Kubernetes mode (instead of --config-dir); with neither, KUBECONFIG or else the in-cluster config")
	fs.StringVar(&k.confDir, "cni-conf-dir", "/etc/cni/net.d", "CNI network config directory the plugin is chained into")
	fs.StringVar(&k.binDir, "cni-bin-dir", "/opt/cni/bin", "CNI plugin directory the ambit-cni binary is copied into")
	fs.StringVar(&k.pluginPath, "cni-plugin-path", "", "ambit-cni binary to install (default: ambit-cni next to this executable, when present)")
	fs.Var(&k.installCNI, "install-cni", "install the plugin into the CNI config and remove it on exit (default true in Kubernetes mode)")
	fs.StringVar(&k.ztunnelDown, "ztunnel-down-policy", string(agent.ZtunnelDownOpen), "when no ztunnel acknowledges a pod: open (the pod starts, handed over later) or closed (CNI ADD fails)")
	return k
}

// mode reports whether the agent runs in Kubernetes mode: --kubeconfig given, or no
// --config-dir inside a cluster. Exactly one config source is allowed.
func (k *kubeFlags) mode(configDir string) (bool, error) {
	switch {
	case k.kubeconfig != "" && configDir != "":
		return false, errors.New("--config-dir and --kubeconfig are mutually exclusive")
	case k.kubeconfig != "":
		return true, nil
	case configDir != "":
		return false, nil
	case kubeclient.Available(""):
		return true, nil
	}
	return false, errors.New("--config-dir or --kubeconfig is required (or KUBECONFIG, or run in a cluster)")
}

// kubeConfig switches cfg to the Kubernetes source and annotator.
func (k *kubeFlags) kubeConfig(cfg *agent.Config, log *slog.Logger) error {
	client, err := kube.NewClient(k.kubeconfig)
	if err != nil {
		return err
	}
	cfg.Source = &kube.Source{Client: client, NodeName: cfg.NodeName, Logger: log.With("component", "kube")}
	cfg.Annotator = &kube.Annotator{Client: client}
	return nil
}

// installer builds the CNI installer for the agent's socket.
func (k *kubeFlags) installer(cniSocket string, log *slog.Logger) *install.Installer {
	plugin := k.pluginPath
	if plugin == "" {
		if exe, err := os.Executable(); err == nil {
			if p := filepath.Join(filepath.Dir(exe), install.PluginType); fileExists(p) {
				plugin = p
			}
		}
		if plugin == "" {
			log.Warn("no ambit-cni binary next to the agent and no --cni-plugin-path; not copying the plugin", "binDir", k.binDir)
		}
	}
	sock, err := filepath.Abs(cniSocket)
	if err != nil {
		sock = cniSocket
	}
	return &install.Installer{ConfDir: k.confDir, BinDir: k.binDir, PluginPath: plugin, AgentSocket: sock, Logger: log.With("component", "install")}
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}

// optBool is a boolean flag that remembers whether it was set, for a default that
// depends on other flags.
type optBool struct{ v, set bool }

func (b *optBool) String() string   { return strconv.FormatBool(b.v) }
func (b *optBool) IsBoolFlag() bool { return true }
func (b *optBool) Set(s string) error {
	v, err := strconv.ParseBool(s)
	if err != nil {
		return err
	}
	b.v, b.set = v, true
	return nil
}

// value returns the flag, or def when it was not given.
func (b *optBool) value(def bool) bool {
	if b.set {
		return b.v
	}
	return def
}
