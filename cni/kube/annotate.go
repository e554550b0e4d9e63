package kube

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/ambitmesh/ambit/pkg/wire"
)

// Annotator writes the pod annotation ambient.istio.io/redirection (wire.md's Kubernetes
// API surface) the way Istio's node agent does: a JSON merge patch on the pods/status
// subresource (which may change metadata too and needs only "patch pods/status" rights).
// The patch also names the pod's UID, so the API server rejects it (422, immutable
// field) when the name now belongs to a different pod instance.
type Annotator struct {
	// Client talks to the API server. Required.
	Client kubernetes.Interface
}

// SetRedirection sets the annotation to "enabled" (enabled true) or removes it (false)
// on pod namespace/name; uid, when not empty, must be the pod's UID. Removing it from a
// pod that no longer exists is not an error; every other API error is returned wrapped.
func (an *Annotator) SetRedirection(ctx context.Context, namespace, name, uid string, enabled bool) error {
	if an.Client == nil {
		return errors.New("annotate pod: no client")
	}
	patch, err := redirectionPatch(uid, enabled)
	if err != nil {
		return fmt.Errorf("annotate pod %s/%s: %w", namespace, name, err)
	}
	_, err = an.Client.CoreV1().Pods(namespace).Patch(ctx, name, types.MergePatchType, patch, metav1.PatchOptions{}, "status")
	if err != nil {
		if !enabled && apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("annotate pod %s/%s: %w", namespace, name, err)
	}
	return nil
}

// redirectionPatch builds the merge patch: {"metadata":{"uid":U,"annotations":{K:"enabled"|null}}}.
func redirectionPatch(uid string, enabled bool) ([]byte, error) {
	var value any // nil: a merge patch deletes the key
	if enabled {
		value = wire.RedirectionEnabled
	}
	meta := map[string]any{"annotations": map[string]any{wire.AnnotationRedirection: value}}
	if uid != "" {
		meta["uid"] = uid
	}
	return json.Marshal(map[string]any{"metadata": meta})
}
