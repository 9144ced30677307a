// Command gguf_parser_estimate prints gguf-parser-go's llama.cpp memory estimate of one GGUF file as JSON.
//
// It mirrors llama-server flags: -c, -np, -ub, -b, -fa, -ctk/-ctv, --swa-full and -ngl (0 = all on the
// CPU, -1 = full offload). Built by bench/sizing_benchmark.py; the library is pinned in go.mod.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"strings"

	parser "github.com/gpustack/gguf-parser-go"
)

type device struct {
	Weights      uint64 `json:"weights"`
	WeightsInput uint64 `json:"weights_input"`
	KVKey        uint64 `json:"kv_key"`
	KVValue      uint64 `json:"kv_value"`
	Footprint    uint64 `json:"footprint"`
	CompFoot     uint64 `json:"computation_footprint"`
	CompInput    uint64 `json:"computation_input"`
	CompGraph    uint64 `json:"computation_graph"`
	CompOutput   uint64 `json:"computation_output"`
	Computation  uint64 `json:"computation"`
	HandleLayers uint64 `json:"handle_layers"`
}

type result struct {
	Architecture string   `json:"architecture"`
	ContextSize  uint64   `json:"context_size"`
	Devices      []device `json:"devices"`
	RAMNonUMA    uint64   `json:"ram_nonuma"`
	VRAMNonUMA   []uint64 `json:"vram_nonuma"`
}

func cacheType(name string) (parser.GGMLType, error) {
	for t := parser.GGMLTypeF32; t < parser.GGMLType(64); t++ {
		if strings.EqualFold(t.String(), name) {
			return t, nil
		}
	}
	return 0, fmt.Errorf("unknown cache type %q", name)
}

func main() {
	model := flag.String("m", "", "GGUF file")
	ctx := flag.Int("c", 4096, "context size")
	np := flag.Int("np", 1, "parallel sequences")
	ub := flag.Int("ub", 512, "physical batch size")
	b := flag.Int("b", 2048, "logical batch size")
	fa := flag.Bool("fa", false, "flash attention")
	ctk := flag.String("ctk", "f16", "K cache type")
	ctv := flag.String("ctv", "f16", "V cache type")
	swaFull := flag.Bool("swa-full", false, "full-size SWA cache")
	ngl := flag.Int("ngl", 0, "offloaded layers (-1: all)")
	flag.Parse()

	gf, err := parser.ParseGGUFFile(*model, parser.SkipLargeMetadata())
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	kt, err := cacheType(*ctk)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	vt, err := cacheType(*ctv)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	opts := []parser.GGUFRunEstimateOption{
		parser.WithLLaMACppContextSize(int32(*ctx)),
		parser.WithParallelSize(int32(*np)),
		parser.WithLLaMACppLogicalBatchSize(int32(*b)),
		parser.WithLLaMACppPhysicalBatchSize(int32(*ub)),
		parser.WithLLaMACppCacheKeyType(kt),
		parser.WithLLaMACppCacheValueType(vt),
	}
	if *fa {
		opts = append(opts, parser.WithFlashAttention())
	}
	if *swaFull {
		opts = append(opts, parser.WithLLaMACppFullSizeSWACache())
	}
	if *ngl < 0 {
		opts = append(opts, parser.WithLLaMACppOffloadLayers(math.MaxUint64))
	} else {
		opts = append(opts, parser.WithLLaMACppOffloadLayers(uint64(*ngl)))
	}
	e := gf.EstimateLLaMACppRun(opts...)
	r := result{Architecture: e.Architecture, ContextSize: e.ContextSize}
	for _, d := range e.Devices {
		r.Devices = append(r.Devices, device{
			Weights:      uint64(d.Weight.Sum()),
			WeightsInput: uint64(d.Weight.Input),
			KVKey:        uint64(d.KVCache.Key),
			KVValue:      uint64(d.KVCache.Value),
			Footprint:    uint64(d.Footprint),
			CompFoot:     uint64(d.Computation.Footprint),
			CompInput:    uint64(d.Computation.Input),
			CompGraph:    uint64(d.Computation.Compute),
			CompOutput:   uint64(d.Computation.Output),
			Computation:  uint64(d.Computation.Sum()),
			HandleLayers: d.HandleLayers,
		})
	}
	// the CLI's default platform footprint: 150 MiB RAM, 250 MiB VRAM (cmd/gguf-parser --platform-footprint)
	s := e.SummarizeItem(true, 150*1024*1024, 250*1024*1024)
	r.RAMNonUMA = uint64(s.RAM.NonUMA)
	for _, v := range s.VRAMs {
		r.VRAMNonUMA = append(r.VRAMNonUMA, uint64(v.NonUMA))
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(r); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
