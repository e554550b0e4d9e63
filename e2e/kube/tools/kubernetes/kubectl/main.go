// Command kubectl is the upstream Kubernetes CLI, built from k8s.io/kubectl for
// Ambit's e2e harness.
package main

import (
	"k8s.io/component-base/cli"
	"k8s.io/kubectl/pkg/cmd"
	cmdutil "k8s.io/kubectl/pkg/cmd/util"
)

func main() {
	if err := cli.RunNoErrOutput(cmd.NewDefaultKubectlCommand()); err != nil {
		// Prints the error the way kubectl does and exits non-zero.
		cmdutil.CheckErr(err)
	}
}
