package policy

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/open-policy-agent/opa/v1/ast"
)

// Converting an input costs more than deciding on it: some microseconds
// per node, while the default policy decides most ticks from
// input.node_stats alone. So a Prepared input converts its light keys
// (the cluster, its metrics, health, estimates, params, node_stats) at
// once, and the heavy ones (nodes, hosts, history, operations) only if
// the policy reads them.
//
// OPA cannot be told to call back when a key of the input is read, but
// its lazy object converts a key's Go value on first read. A heavy key's
// value is a tripwire: converting it records the read and yields null.
// An evaluation that tripped a wire is discarded, which is safe because
// evaluation is pure (no network, no printing, time pinned), and made
// again on the whole input. A policy that reads a heavy key on every
// tick pays for the first evaluation up to that read; one that reads
// them only to act (to rank templates or victims) pays nothing on the
// ticks it does not act.

// Prepared is an input checked and converted for evaluation, once for
// several policies (a comparison, a policy about to replace the running
// one). It is immutable and safe for concurrent use.
type Prepared struct {
	in    *Input
	light map[string]any // key → ast.Value

	once sync.Once
	full atomic.Value // ast.Value, once converted
}

// Prepare checks and converts an input. Its errors name what is wrong.
func Prepare(in *Input) (*Prepared, error) {
	if in == nil {
		return nil, errors.New("policy: nil input")
	}
	if in.Schema != SchemaVersion {
		return nil, fmt.Errorf("policy: input schema %d, this engine speaks %d", in.Schema, SchemaVersion)
	}
	params, err := paramsTerm(in.Params)
	if err != nil {
		return nil, fmt.Errorf("policy: input: %w", err)
	}
	p := &Prepared{in: in, light: make(map[string]any, len(inputKeys)+1)}
	c := newConverter(in, false)
	for _, k := range inputKeys {
		if !k.heavy {
			p.light[string(k.key.Value.(ast.String))] = k.conv(c, in).Value
		}
	}
	p.light[string(kParams.Value.(ast.String))] = params.Value
	return p, nil
}

// value is the whole input, converted on first use.
func (p *Prepared) value() ast.Value {
	p.once.Do(func() {
		c := newConverter(p.in, true)
		kvs := make([][2]*ast.Term, 0, len(p.light)+len(inputKeys))
		for k, v := range p.light {
			kvs = append(kvs, [2]*ast.Term{ast.StringTerm(k), ast.NewTerm(v.(ast.Value))})
		}
		for _, k := range inputKeys {
			if k.heavy {
				kvs = append(kvs, [2]*ast.Term{k.key, k.conv(c, p.in)})
			}
		}
		p.full.Store(ast.NewObject(kvs...))
	})
	return p.full.Load().(ast.Value)
}

// lazy is the input with its heavy keys unconverted: reading one sets
// read. Once the whole input exists, it is that.
func (p *Prepared) lazy(read *atomic.Bool) ast.Value {
	if v, ok := p.full.Load().(ast.Value); ok {
		return v
	}
	native := make(map[string]any, len(p.light)+len(inputKeys))
	for k, v := range p.light {
		native[k] = v
	}
	for _, k := range inputKeys {
		if k.heavy {
			native[string(k.key.Value.(ast.String))] = tripwire{read}
		}
	}
	return ast.LazyObject(native)
}

// tripwire stands for a heavy key. OPA converts a Go value it does not
// know through its JSON encoding.
type tripwire struct{ read *atomic.Bool }

func (t tripwire) MarshalJSON() ([]byte, error) {
	t.read.Store(true)
	return []byte("null"), nil
}
