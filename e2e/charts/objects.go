package charts

import (
	"errors"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
)

// ErrNotFound is returned (wrapped) by Find, PodSpec and Container when the rendered
// objects hold no object or container of the requested kind and name.
var ErrNotFound = errors.New("not found in rendered chart")

// Find returns the first object of kind (e.g. "DaemonSet") named name, or ErrNotFound.
func Find(objs []unstructured.Unstructured, kind, name string) (*unstructured.Unstructured, error) {
	for i := range objs {
		if objs[i].GetKind() == kind && objs[i].GetName() == name {
			return &objs[i], nil
		}
	}
	return nil, fmt.Errorf("find %s %s: %w", kind, name, ErrNotFound)
}

// PodSpec returns the pod template spec of the Deployment, DaemonSet or StatefulSet
// (kind) named name, decoded into the typed API (k8s.io/api/apps/v1). Other kinds are
// an error.
func PodSpec(objs []unstructured.Unstructured, kind, name string) (*corev1.PodSpec, error) {
	u, err := Find(objs, kind, name)
	if err != nil {
		return nil, err
	}
	switch kind {
	case "Deployment":
		var d appsv1.Deployment
		if err := fromUnstructured(u, &d); err != nil {
			return nil, fmt.Errorf("pod spec of %s %s: %w", kind, name, err)
		}
		return &d.Spec.Template.Spec, nil
	case "DaemonSet":
		var d appsv1.DaemonSet
		if err := fromUnstructured(u, &d); err != nil {
			return nil, fmt.Errorf("pod spec of %s %s: %w", kind, name, err)
		}
		return &d.Spec.Template.Spec, nil
	case "StatefulSet":
		var s appsv1.StatefulSet
		if err := fromUnstructured(u, &s); err != nil {
			return nil, fmt.Errorf("pod spec of %s %s: %w", kind, name, err)
		}
		return &s.Spec.Template.Spec, nil
	default:
		return nil, fmt.Errorf("pod spec of %s %s: kind has no pod template", kind, name)
	}
}

// Container returns the container (or init container) named container of the workload
// kind/name (see PodSpec), or ErrNotFound.
func Container(objs []unstructured.Unstructured, kind, name, container string) (*corev1.Container, error) {
	spec, err := PodSpec(objs, kind, name)
	if err != nil {
		return nil, err
	}
	for _, list := range [][]corev1.Container{spec.Containers, spec.InitContainers} {
		for i := range list {
			if list[i].Name == container {
				return &list[i], nil
			}
		}
	}
	return nil, fmt.Errorf("container %s of %s %s: %w", container, kind, name, ErrNotFound)
}

// fromUnstructured decodes u into the typed object out, rejecting unknown fields, so a
// misspelt field in a template fails here rather than being dropped.
func fromUnstructured(u *unstructured.Unstructured, out any) error {
	if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(u.Object, out, true); err != nil {
		return fmt.Errorf("decode %s: %w", u.GetKind(), err)
	}
	return nil
}
