package model

import (
	"fmt"
	"maps"
	"testing"

	"istio.io/istio/pkg/workloadapi"
)

func addr(uid string) *workloadapi.Address {
	return &workloadapi.Address{Type: &workloadapi.Address_Workload{Workload: &workloadapi.Workload{Uid: uid}}}
}

// TestAddressMapDeriveLeavesBaseAlone: writes to a derived map never show in its base,
// the derived map sees base's entries plus its own, and only written shards are copied.
func TestAddressMapDeriveLeavesBaseAlone(t *testing.T) {
	w := newAddressWriter(1000)
	for i := range 1000 {
		name := fmt.Sprintf("n%d", i)
		w.set(name, addr(name))
	}
	base := *w.m
	if base.Len() != 1000 {
		t.Fatalf("base Len %d", base.Len())
	}

	d := deriveAddresses(&base)
	d.delete("n1")
	d.delete("absent")
	d.set("n2", addr("n2-new"))
	d.set("new", addr("new"))
	derived := *d.m

	if derived.Len() != 1000 || base.Len() != 1000 {
		t.Fatalf("Len: derived %d base %d, want 1000 and 1000", derived.Len(), base.Len())
	}
	if base.Get("n1") == nil || base.Get("n2").GetWorkload().Uid != "n2" || base.Get("new") != nil {
		t.Fatal("base changed by writes to the derived map")
	}
	if _, ok := derived.Lookup("n1"); ok || derived.Get("n2").GetWorkload().Uid != "n2-new" || derived.Get("new") == nil {
		t.Fatal("derived map misses its own writes")
	}
	if derived.Get("n500") != base.Get("n500") {
		t.Fatal("unchanged entry is not shared")
	}
	shared := 0
	for i := range base.shards {
		if fmt.Sprintf("%p", base.shards[i]) == fmt.Sprintf("%p", derived.shards[i]) {
			shared++
		}
	}
	if shared < addressShards-3 {
		t.Fatalf("%d of %d shards shared after writes to at most 3", shared, addressShards)
	}
	all := maps.Collect(derived.All())
	if len(all) != 1000 || all["new"] == nil || all["n1"] != nil {
		t.Fatalf("All yields %d entries", len(all))
	}
}

// TestPodOutputsDeriveLeavesBaseAlone: as AddressMap, for the chunked pod outputs.
func TestPodOutputsDeriveLeavesBaseAlone(t *testing.T) {
	base := newPodOutputs(3*outChunk + 7)
	for i := range base.n {
		base.at(i).live = i%2 == 0
	}
	d := deriveOutputs(base)
	d.set(outChunk+1, podOutput{live: true, enrolled: true})
	if base.at(outChunk+1).enrolled || !d.o.at(outChunk+1).enrolled {
		t.Fatal("derived write leaked into base or was lost")
	}
	if &base.chunks[0][0] != &d.o.chunks[0][0] || &base.chunks[1][0] == &d.o.chunks[1][0] {
		t.Fatal("want only the written chunk copied")
	}
	n := 0
	for out := range d.o.all() {
		if n != outChunk+1 && out.live != (n%2 == 0) {
			t.Fatalf("output %d: live %v", n, out.live)
		}
		n++
	}
	if n != base.n {
		t.Fatalf("all yields %d, want %d", n, base.n)
	}
}
