package node_test

import (
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/mitosis-autoscaler/mitosis/node"
)

// The OpenAPI description and the wire types must not drift apart.
func TestOpenAPIDescribesTheWireTypes(t *testing.T) {
	b, err := os.ReadFile("../docs/node-api.openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Components struct {
			Schemas map[string]struct {
				Properties map[string]any `yaml:"properties"`
			} `yaml:"schemas"`
		} `yaml:"components"`
	}
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	for name, typ := range map[string]reflect.Type{
		"Status":           reflect.TypeFor[node.Status](),
		"PrepareRequest":   reflect.TypeFor[node.PrepareRequest](),
		"PrepareReply":     reflect.TypeFor[node.PrepareReply](),
		"OperationRequest": reflect.TypeFor[node.OperationRequest](),
		"FinalizeRequest":  reflect.TypeFor[node.FinalizeRequest](),
		"Problem":          reflect.TypeFor[node.Problem](),
	} {
		var fields []string
		for f := range typ.Fields() {
			fields = append(fields, strings.Split(f.Tag.Get("json"), ",")[0])
		}
		var described []string
		for p := range doc.Components.Schemas[name].Properties {
			described = append(described, p)
		}
		slices.Sort(fields)
		slices.Sort(described)
		if !slices.Equal(fields, described) {
			t.Errorf("%s: Go fields %v, OpenAPI properties %v", name, fields, described)
		}
	}
}
