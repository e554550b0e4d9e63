package main

import (
	"fmt"
	"net/netip"

	"github.com/ambitmesh/ambit/e2e/mesh"
	"github.com/ambitmesh/ambit/pkg/wire"
)

// The ambient modes' Service and the l7 mode's waypoint.
const (
	// serverService is the Service selecting a case's server pod (app=server).
	serverService = "server"
	// waypointName is the l7 cases' waypoint: its Gateway, Service, service account
	// and pod in the case's namespace.
	waypointName = "waypoint"
	// waypointBin is the waypoint binary, expected in --bin (make build).
	waypointBin = "waypoint"
)

// servicePorts are the server Service's ports: iperf3's declared TCP (name "tcp") so
// that a waypoint relays it as bytes (tcp_proxy), fortio's declared HTTP (name "http")
// so that a waypoint proxies its requests.
var servicePorts = []mesh.ServicePort{
	{Name: "tcp", Port: iperfPort, TargetPort: iperfPort},
	{Name: "http", Port: fortioPort, TargetPort: fortioPort},
}

// serverService writes the case's Service for its server pod, with a fresh cluster IP
// and, when the mode has one, istio.io/use-waypoint naming the waypoint; it returns
// the VIP, which ztunnel resolves to the server pod (through the waypoint for l7).
func (b *bench) serverService(bc benchCase) (netip.Addr, error) {
	vip, err := b.m.Config.AllocateServiceIP()
	if err != nil {
		return netip.Addr{}, fmt.Errorf("server service: %w", err)
	}
	var labels map[string]string
	if spec(bc.mode).waypoint {
		labels = map[string]string{wire.LabelUseWaypoint: waypointName}
	}
	err = b.m.Config.LabelledService(bc.namespace(), serverService, vip.String(), labels,
		map[string]string{"app": "server"}, servicePorts...)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("server service: %w", err)
	}
	return vip, nil
}

// waypoints are the waypoints of the cases, declared to the mesh before it starts.
func waypoints(cs []benchCase) []mesh.WaypointSpec {
	var out []mesh.WaypointSpec
	for _, bc := range cs {
		if spec(bc.mode).waypoint {
			out = append(out, mesh.WaypointSpec{Namespace: bc.namespace(), Name: waypointName})
		}
	}
	return out
}
