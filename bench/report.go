package bench

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Figure is one measured number, by name, for tools (bench/results.json).
type Figure struct {
	Name    string  `json:"name"`
	Value   float64 `json:"value"`
	Unit    string  `json:"unit"`
	Goal    string  `json:"goal,omitempty"`
	Met     *bool   `json:"met,omitempty"`
	Command string  `json:"command"`
}

// section is one part of BENCHMARKS.md: how it was measured, a table, and notes.
type section struct {
	title   string
	how     string
	command string
	header  []string
	rows    [][]string
	notes   []string
	skipped string // why the part did not run; empty when it ran
}

// Results is what one run measured.
type Results struct {
	Machine  Machine   `json:"machine"`
	Date     time.Time `json:"date"`
	Quick    bool      `json:"quick"`
	Figures  []Figure  `json:"figures"`
	Skipped  []string  `json:"skipped,omitempty"`
	Failures []string  `json:"failures,omitempty"`
	sections []section
}

func (r *Results) add(f Figure) Figure {
	r.Figures = append(r.Figures, f)
	return f
}

// Figure returns the figure of that name.
func (r *Results) Figure(name string) (Figure, bool) {
	for _, f := range r.Figures {
		if f.Name == name {
			return f, true
		}
	}
	return Figure{}, false
}

func met(ok bool) *bool { return &ok }

func verdict(f Figure) string {
	switch {
	case f.Met == nil:
		return ""
	case *f.Met:
		return "met"
	default:
		return "**missed**"
	}
}

// writeJSON writes bench/results.json.
func (r *Results) writeJSON(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// writeMarkdown writes BENCHMARKS.md.
func (r *Results) writeMarkdown(path string, extra string) error {
	var b strings.Builder
	fmt.Fprintf(&b, "# portmirror benchmarks\n\n")
	fmt.Fprintf(&b, "Written by `make bench` (the program `cmd/portmirror-bench`) on %s", r.Date.UTC().Format("2006-01-02 15:04 MST"))
	if r.Quick {
		b.WriteString(" in **quick mode** (`BENCH_QUICK=1`: every size a tenth of the real one; a smoke test, not a measurement)")
	}
	b.WriteString(". Every figure is also in `bench/results.json` by name. ")
	b.WriteString("The figures are ratios and latencies on a small shared machine: read them side by side, not as absolute truths.\n\n")
	m := r.Machine
	b.WriteString("## Machine\n\n| | |\n| --- | --- |\n")
	fmt.Fprintf(&b, "| CPU | %s |\n| cores (nproc) | %d |\n| memory | %s |\n| kernel | %s |\n| Open vSwitch | %s |\n| Go | %s |\n| os-ken | %s |\n\n",
		m.CPU, m.NProc, m.Memory, m.Kernel, m.OVS, m.Go, m.OSKen)
	b.WriteString("## Goals\n\n| figure | value | goal | |\n| --- | --- | --- | --- |\n")
	for _, f := range r.Figures {
		if f.Goal == "" {
			continue
		}
		fmt.Fprintf(&b, "| `%s` | %s %s | %s | %s |\n", f.Name, fmtValue(f.Value), f.Unit, f.Goal, verdict(f))
	}
	b.WriteString("\n")
	for _, s := range r.sections {
		fmt.Fprintf(&b, "## %s\n\n", s.title)
		if s.skipped != "" {
			fmt.Fprintf(&b, "Not measured in this run: %s\n\n", s.skipped)
			continue
		}
		if s.how != "" {
			fmt.Fprintf(&b, "%s\n\n", s.how)
		}
		if s.command != "" {
			fmt.Fprintf(&b, "Reproduce: `%s`\n\n", s.command)
		}
		if len(s.header) > 0 {
			fmt.Fprintf(&b, "| %s |\n|%s\n", strings.Join(s.header, " | "), strings.Repeat(" --- |", len(s.header)))
			for _, row := range s.rows {
				fmt.Fprintf(&b, "| %s |\n", strings.Join(row, " | "))
			}
			b.WriteString("\n")
		}
		for _, n := range s.notes {
			fmt.Fprintf(&b, "- %s\n", n)
		}
		if len(s.notes) > 0 {
			b.WriteString("\n")
		}
	}
	if len(r.Failures) > 0 {
		b.WriteString("## Failures in this run\n\n")
		for _, f := range r.Failures {
			fmt.Fprintf(&b, "- %s\n", f)
		}
		b.WriteString("\n")
	}
	b.WriteString(extra)
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

func fmtValue(v float64) string {
	switch {
	case v == float64(int64(v)) && v < 1e15 && v > -1e15:
		return fmt.Sprintf("%d", int64(v))
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 1:
		return fmt.Sprintf("%.2f", v)
	default:
		return fmt.Sprintf("%.3f", v)
	}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
