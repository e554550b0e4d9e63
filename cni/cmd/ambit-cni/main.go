// Command ambit-cni is Ambit's chained CNI plugin (F-ENROL-2): the container runtime
// runs it after the primary plugin with the CNI spec's environment variables and stdin
// config; it hands each pod to the node agent (see package cni/plugin).
package main

import (
	"github.com/containernetworking/cni/pkg/skel"

	"github.com/ambitmesh/ambit/cni/plugin"
)

func main() {
	skel.PluginMainFuncs((&plugin.Plugin{}).Funcs(), plugin.Versions, plugin.About)
}
