package bench

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
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
	// raw, when set, is the whole section as an earlier run wrote it (kept by a run of other parts)
	raw string
}

// part is the part that wrote the section: the one its reproduce command runs.
func (s section) part() string { return partOfCommand(s.command) }

// partOfCommand is the part a reproduce command runs ("" when it names none).
func partOfCommand(cmd string) string {
	_, rest, ok := strings.Cut(cmd, "-only ")
	if !ok {
		return ""
	}
	if f := strings.Fields(rest); len(f) > 0 {
		return strings.Trim(f[0], "`")
	}
	return ""
}

// Results is what one run measured.
type Results struct {
	Machine  Machine   `json:"machine"`
	Date     time.Time `json:"date"`
	Quick    bool      `json:"quick"`
	Figures  []Figure  `json:"figures"`
	Skipped  []string  `json:"skipped,omitempty"`
	Failures []string  `json:"failures,omitempty"`
	// Measured is when each part's figures were measured: a run of some parts (-only) keeps the other parts'
	// figures and sections from the files it replaces.
	Measured map[string]time.Time `json:"measured,omitempty"`
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
	if earlier := r.earlierParts(); earlier != "" {
		fmt.Fprintf(&b, "This run measured %s; %s. ", r.thisRunParts(), earlier)
	}
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
		if s.raw != "" {
			b.WriteString(s.raw)
			continue
		}
		fmt.Fprintf(&b, "## %s\n\n", s.title)
		if s.skipped != "" {
			fmt.Fprintf(&b, "Not measured in this run: %s\n\n", s.skipped)
			if s.command != "" {
				fmt.Fprintf(&b, "Reproduce: `%s`\n\n", s.command)
			}
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

// thisRunParts names the parts measured at r.Date.
func (r *Results) thisRunParts() string {
	var ps []string
	for _, p := range Parts {
		if t, ok := r.Measured[p]; ok && t.Equal(r.Date) {
			ps = append(ps, p)
		}
	}
	return strings.Join(ps, ", ")
}

// earlierParts says which parts' figures come from earlier runs, and when those ran; "" when none.
func (r *Results) earlierParts() string {
	var ps []string
	for _, p := range Parts {
		if t, ok := r.Measured[p]; ok && !t.Equal(r.Date) {
			ps = append(ps, fmt.Sprintf("%s on %s", p, t.UTC().Format("2006-01-02 15:04 MST")))
		}
	}
	if len(ps) == 0 {
		return ""
	}
	return "the figures of the other parts are kept from earlier runs (" + strings.Join(ps, "; ") + ")"
}

// partOfNote is the part an entry of Skipped or Failures ("part: why") belongs to.
func partOfNote(s string) string {
	head, _, _ := strings.Cut(s, ":")
	f := strings.Fields(head)
	if len(f) == 0 {
		return ""
	}
	if f[0] == "osken" {
		return "bulk"
	}
	return f[0]
}

// keepEarlier merges what an earlier run wrote into jsonPath and mdPath for the parts this run did not measure
// (ran): their figures, skipped and failure notes, measurement dates and BENCHMARKS.md sections, in the order of
// Parts. Files that are missing, unreadable or from a run of another mode (quick or not) are not merged; the
// reason is returned.
func (r *Results) keepEarlier(jsonPath, mdPath string, ran []string) error {
	raw, err := os.ReadFile(jsonPath)
	if err != nil {
		return err
	}
	var old Results
	if err := json.Unmarshal(raw, &old); err != nil {
		return fmt.Errorf("%s: %w", jsonPath, err)
	}
	if old.Quick != r.Quick {
		return fmt.Errorf("%s was written by a run with quick=%v, this one has quick=%v", jsonPath, old.Quick, r.Quick)
	}
	kept := func(part string) bool { return part != "" && !slices.Contains(ran, part) }
	for _, f := range old.Figures {
		if p := partOfCommand(f.Command); kept(p) {
			r.Figures = append(r.Figures, f)
			if r.Measured == nil {
				r.Measured = map[string]time.Time{}
			}
			if _, ok := r.Measured[p]; !ok {
				t, ok := old.Measured[p]
				if !ok {
					t = old.Date
				}
				r.Measured[p] = t
			}
		}
	}
	for _, s := range old.Skipped {
		if kept(partOfNote(s)) {
			r.Skipped = append(r.Skipped, s)
		}
	}
	for _, s := range old.Failures {
		if kept(partOfNote(s)) {
			r.Failures = append(r.Failures, s)
		}
	}
	if md, err := os.ReadFile(mdPath); err == nil {
		for _, chunk := range splitSections(string(md)) {
			_, rest, _ := strings.Cut(chunk, "Reproduce: `")
			cmd, _, _ := strings.Cut(rest, "`")
			if p := partOfCommand(cmd); kept(p) {
				r.sections = append(r.sections, section{command: cmd, raw: chunk})
			}
		}
	}
	order := func(p string) int {
		if i := slices.Index(Parts, p); i >= 0 {
			return i
		}
		return len(Parts)
	}
	slices.SortStableFunc(r.Figures, func(a, b Figure) int { return order(partOfCommand(a.Command)) - order(partOfCommand(b.Command)) })
	slices.SortStableFunc(r.sections, func(a, b section) int { return order(a.part()) - order(b.part()) })
	return nil
}

// splitSections cuts a markdown document into its level-2 sections, each from its "## " line to the next one.
func splitSections(md string) []string {
	var out []string
	start := -1
	for i := 0; i < len(md); {
		end := strings.IndexByte(md[i:], '\n')
		if end < 0 {
			end = len(md)
		} else {
			end += i + 1
		}
		if strings.HasPrefix(md[i:], "## ") {
			if start >= 0 {
				out = append(out, md[start:i])
			}
			start = i
		}
		i = end
	}
	if start >= 0 {
		out = append(out, md[start:])
	}
	return out
}
