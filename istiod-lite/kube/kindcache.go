package kube

import (
	"sync/atomic"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/tools/cache"

	"github.com/ambitmesh/ambit/pkg/kubefile"
)

// kindList is the sorted list of one built-in kind's cached objects, listed again only
// after an event of that kind: under pod churn the Services, ServiceAccounts, Nodes
// and EndpointSlices of a snapshot are the previous snapshot's lists, not 3,000 objects
// listed and sorted per snapshot (F-CP-4). Lists handed out are clipped, so a consumer
// appending to one cannot write into the next snapshot's.
type kindList[T any] struct {
	stale  atomic.Bool // an event arrived since list was taken
	list   []*T
	lister func(labels.Selector) ([]*T, error)
	meta   func(*T) *metav1.ObjectMeta
}

func newKindList[T any](lister func(labels.Selector) ([]*T, error), meta func(*T) *metav1.ObjectMeta) *kindList[T] {
	k := &kindList[T]{lister: lister, meta: meta}
	k.stale.Store(true)
	return k
}

// handler marks the list stale on every add, update and delete, then calls next.
// Informers update their store before they notify, so a list taken after the mark
// holds the change.
func (k *kindList[T]) handler(next cache.ResourceEventHandler) cache.ResourceEventHandler {
	return cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) {
			k.stale.Store(true)
			next.OnAdd(obj, false)
		},
		UpdateFunc: func(oldObj, newObj any) {
			k.stale.Store(true)
			next.OnUpdate(oldObj, newObj)
		},
		DeleteFunc: func(obj any) {
			k.stale.Store(true)
			next.OnDelete(obj)
		},
	}
}

// get returns the kind's objects sorted by namespace then name, listing them again
// only when an event arrived since the last list. It is called from one goroutine.
func (k *kindList[T]) get() ([]*T, error) {
	if !k.stale.Swap(false) && k.list != nil {
		return k.list, nil
	}
	list, err := k.lister(labels.Everything())
	if err != nil {
		k.stale.Store(true)
		return nil, err
	}
	kubefile.SortByMeta(list, k.meta)
	if list == nil {
		list = []*T{}
	}
	k.list = list[:len(list):len(list)]
	return k.list, nil
}
