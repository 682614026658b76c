// Command kaito-render prints the tuning Job that KAITO's own controller code builds for a
// tuning Workspace, so tests compare our Job with KAITO's rather than with a reading of it.
//
// stdin: {"workspace": <KAITO Workspace, v1beta1>, "trainingConfig": "<training_config.yaml text>"}
// stdout: the batch/v1 Job as JSON.
//
// It calls tuning.CreatePresetTuning, the function KAITO's WorkspaceReconciler.applyTuning
// calls (pkg/workspace/controllers/workspace_controller.go), with the model it resolves the
// same way (models.GetModelByName) and controller-runtime's in-memory client holding the
// Workspace's parameters ConfigMap.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	kaitov1beta1 "github.com/kaito-project/kaito/api/v1beta1"
	"github.com/kaito-project/kaito/pkg/utils/consts"
	"github.com/kaito-project/kaito/pkg/workspace/tuning"
	"github.com/kaito-project/kaito/presets/workspace/models"
)

type input struct {
	Workspace      kaitov1beta1.Workspace `json:"workspace"`
	TrainingConfig string                 `json:"trainingConfig"`
}

func main() {
	if err := render(); err != nil {
		fmt.Fprintln(os.Stderr, "kaito-render:", err)
		os.Exit(1)
	}
}

func render() error {
	var in input
	if err := json.NewDecoder(os.Stdin).Decode(&in); err != nil {
		return fmt.Errorf("reading input: %w", err)
	}
	// KAITO's Helm chart sets these on its controller (charts/kaito/workspace/templates/deployment.yaml).
	setDefault("CLOUD_PROVIDER", consts.AzureCloudName)
	setDefault("PRESET_REGISTRY_NAME", "mcr.microsoft.com/aks/kaito")

	ws := &in.Workspace
	if ws.Namespace == "" {
		ws.Namespace = "default"
	}
	if ws.Tuning == nil || ws.Tuning.Preset == nil {
		return fmt.Errorf("workspace has no tuning preset")
	}
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{corev1.AddToScheme, batchv1.AddToScheme, kaitov1beta1.AddToScheme} {
		if err := add(scheme); err != nil {
			return err
		}
	}
	builder := fake.NewClientBuilder().WithScheme(scheme)
	if ws.Tuning.Config != "" {
		builder = builder.WithObjects(&corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Name: ws.Tuning.Config, Namespace: ws.Namespace},
			Data:       map[string]string{"training_config.yaml": in.TrainingConfig},
		})
	}
	kubeClient := builder.Build()

	ctx := context.Background()
	model, err := models.GetModelByName(ctx, string(ws.Tuning.Preset.Name), "", ws.Namespace, kubeClient)
	if err != nil {
		return err
	}
	if !model.SupportTuning() {
		return fmt.Errorf("preset %s does not support tuning", ws.Tuning.Preset.Name)
	}
	job, err := tuning.CreatePresetTuning(ctx, ws, "1", model, kubeClient)
	if err != nil {
		return err
	}
	out := json.NewEncoder(os.Stdout)
	out.SetIndent("", "  ")
	return out.Encode(job)
}

func setDefault(name, value string) {
	if os.Getenv(name) == "" {
		os.Setenv(name, value)
	}
}
