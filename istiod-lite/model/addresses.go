package model

import (
	"hash/maphash"
	"iter"
	"slices"

	"istio.io/istio/pkg/workloadapi"
)

// addressShards is how many maps an AddressMap is split into (a power of two).
const addressShards = 64

var shardSeed = maphash.MakeSeed()

func shardOf(name string) int { return int(maphash.String(shardSeed, name) & (addressShards - 1)) }

// AddressMap holds a model's WDS Address resources keyed by resource name. It is
// immutable once its model is built. It is split into shards by name so that a model
// a Builder derives from the previous one (only pods changed) shares every shard the
// change did not touch: a one-pod change copies about 1/64 of 11,000 entries, not all
// of them (F-CP-4). The zero value is empty.
type AddressMap struct {
	shards [addressShards]map[string]*workloadapi.Address
	n      int
}

// Get returns the named resource, or nil.
func (m *AddressMap) Get(name string) *workloadapi.Address {
	return m.shards[shardOf(name)][name]
}

// Lookup returns the named resource and whether it is present.
func (m *AddressMap) Lookup(name string) (*workloadapi.Address, bool) {
	a, ok := m.shards[shardOf(name)][name]
	return a, ok
}

// Len is the number of resources.
func (m *AddressMap) Len() int { return m.n }

// All yields every name and resource, in no particular order.
func (m *AddressMap) All() iter.Seq2[string, *workloadapi.Address] {
	return func(yield func(string, *workloadapi.Address) bool) {
		for _, sh := range m.shards {
			for name, a := range sh {
				if !yield(name, a) {
					return
				}
			}
		}
	}
}

// addressWriter edits an AddressMap being built, copying a shared shard before its
// first write.
type addressWriter struct {
	m     *AddressMap
	owned [addressShards]bool
}

// newAddressWriter returns a writer of an empty map sized for about n resources.
func newAddressWriter(n int) addressWriter {
	w := addressWriter{m: &AddressMap{}}
	for i := range w.m.shards {
		w.m.shards[i] = make(map[string]*workloadapi.Address, n/addressShards+1)
		w.owned[i] = true
	}
	return w
}

// deriveAddresses returns a writer of a copy of base that shares base's shards until
// they are written.
func deriveAddresses(base *AddressMap) addressWriter {
	c := *base
	return addressWriter{m: &c}
}

func (w *addressWriter) shard(name string) map[string]*workloadapi.Address {
	i := shardOf(name)
	if !w.owned[i] {
		sh := make(map[string]*workloadapi.Address, len(w.m.shards[i])+1)
		for k, v := range w.m.shards[i] {
			sh[k] = v
		}
		w.m.shards[i], w.owned[i] = sh, true
	}
	return w.m.shards[i]
}

func (w *addressWriter) set(name string, a *workloadapi.Address) {
	sh := w.shard(name)
	if _, ok := sh[name]; !ok {
		w.m.n++
	}
	sh[name] = a
}

func (w *addressWriter) delete(name string) {
	if _, ok := w.m.shards[shardOf(name)][name]; ok {
		delete(w.shard(name), name)
		w.m.n--
	}
}

// outChunk is how many pod outputs a podOutputs chunk holds.
const outChunk = 256

// podOutputs are a model's pod outputs, one per snapshot pod in snapshot order, in
// chunks that a derived model shares with its base until it writes them (as
// AddressMap's shards).
type podOutputs struct {
	chunks [][]podOutput
	n      int
}

func newPodOutputs(n int) podOutputs {
	o := podOutputs{n: n}
	for i := 0; i < n; i += outChunk {
		o.chunks = append(o.chunks, make([]podOutput, min(outChunk, n-i)))
	}
	return o
}

func (o *podOutputs) at(i int) *podOutput { return &o.chunks[i/outChunk][i%outChunk] }

// all yields every output in order.
func (o *podOutputs) all() iter.Seq[*podOutput] {
	return func(yield func(*podOutput) bool) {
		for _, c := range o.chunks {
			for i := range c {
				if !yield(&c[i]) {
					return
				}
			}
		}
	}
}

// outputsWriter edits podOutputs derived from a base, copying a shared chunk before
// its first write.
type outputsWriter struct {
	o     podOutputs
	owned []bool
}

func deriveOutputs(base podOutputs) outputsWriter {
	return outputsWriter{o: podOutputs{chunks: slices.Clone(base.chunks), n: base.n}, owned: make([]bool, len(base.chunks))}
}

func (w *outputsWriter) set(i int, out podOutput) {
	c := i / outChunk
	if !w.owned[c] {
		w.o.chunks[c], w.owned[c] = slices.Clone(w.o.chunks[c]), true
	}
	w.o.chunks[c][i%outChunk] = out
}
