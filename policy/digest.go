package policy

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"math"
	"strconv"
)

// Digest identifies the input, so that a decision can be tied to exactly
// what it saw. It hashes the fields directly (JSON encoding cost more than
// the rest of a tick) and does not depend on map order. Every field of the
// contract is hashed (TestEveryReaderCoversEveryField).
func (in *Input) Digest() string {
	d := digester{buf: make([]byte, 0, 256+128*len(in.Nodes))}
	d.int(int64(in.Schema))
	d.int(in.Now)
	c := in.Cluster
	d.str(c.Name)
	d.int(int64(c.Min))
	d.int(int64(c.Max))
	d.int(int64(c.Size))
	d.strs(c.Roles)
	for _, n := range in.Nodes {
		d.str(n.ID)
		d.str(n.Role)
		d.str(n.State)
		d.str(n.Host)
		d.str(n.VM)
		d.float(n.AgeS)
		d.str(n.Parent)
		d.int(int64(n.LineageDepth))
		d.metrics(n.Metrics)
	}
	for _, h := range in.Hosts {
		d.str(h.Name)
		d.int(int64(h.Capacity))
		d.int(int64(h.VMs))
	}
	d.metrics(in.Metrics)
	d.bool(in.Health.MetricsAvailable)
	d.str(in.Health.Reason)
	d.float(in.History.LastExpandSAgo)
	d.float(in.History.LastContractSAgo)
	d.float(in.History.LastJoinSAgo)
	for _, r := range in.History.Recent {
		d.float(r.SAgo)
		d.str(r.Action)
		d.int(int64(r.Count))
	}
	d.float(in.Estimates.CloneSeconds)
	d.float(in.Estimates.DrainSeconds)
	for _, op := range in.Operations {
		d.strs([]string{op.ID, op.Kind, op.Step, op.Template, op.Node, op.Host})
		d.float(op.AgeS)
	}
	d.str(fmt.Sprint(in.Params)) // fmt prints maps in key order
	h := fnv.New64a()
	h.Write(d.buf)
	return strconv.FormatUint(h.Sum64(), 16)
}

// digester serializes values unambiguously (fixed-width numbers, lengths
// before strings) into one buffer that is hashed once.
type digester struct{ buf []byte }

func (d *digester) str(s string) {
	d.buf = binary.AppendUvarint(d.buf, uint64(len(s)))
	d.buf = append(d.buf, s...)
}
func (d *digester) strs(ss []string) {
	d.int(int64(len(ss)))
	for _, s := range ss {
		d.str(s)
	}
}
func (d *digester) int(v int64) { d.buf = binary.LittleEndian.AppendUint64(d.buf, uint64(v)) }
func (d *digester) float(v float64) {
	d.buf = binary.LittleEndian.AppendUint64(d.buf, math.Float64bits(v))
}
func (d *digester) bool(v bool) {
	if v {
		d.buf = append(d.buf, 1)
	} else {
		d.buf = append(d.buf, 0)
	}
}

// metrics adds a map without sorting its keys: each entry is hashed on its
// own and the hashes are summed, which does not depend on their order.
func (d *digester) metrics(m map[string]Metric) {
	var sum uint64
	for k, v := range m {
		h := fnvString(fnvOffset, k)
		h = fnvUint64(h, math.Float64bits(v.Value))
		sum += fnvUint64(h, math.Float64bits(v.AgeS))
	}
	d.int(int64(len(m)))
	d.int(int64(sum))
}

// FNV-1a, inline, so that hashing a map entry allocates nothing.
const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

func fnvString(h uint64, s string) uint64 {
	for i := 0; i < len(s); i++ {
		h = (h ^ uint64(s[i])) * fnvPrime
	}
	return h
}

func fnvUint64(h, v uint64) uint64 {
	for range 8 {
		h = (h ^ (v & 0xff)) * fnvPrime
		v >>= 8
	}
	return h
}
