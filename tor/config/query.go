package config

import (
	"errors"
	"fmt"
	"strings"

	"tinytor/tor/cstring"
)

// Queries on the option table for the control port (GETCONF, SETCONF,
// SAVECONF, GETINFO config/names).

// ReadLayers reads the lines Load builds a Config from, lowest precedence
// first: the defaults file, the torrc and the command-line overrides.
// Build(s.Env, layers...) gives the Config Load returns.
func ReadLayers(s Sources) ([][]Line, error) {
	defaults, _, err := readLayer(s.Defaults, DefaultDefaultsTorrc)
	if err != nil {
		return nil, err
	}
	torrc, _, err := readLayer(s.Torrc, DefaultTorrc)
	if err != nil {
		return nil, err
	}
	return [][]Line{defaults, torrc, s.Args}, nil
}

// TorrcPath is the torrc file Load reads for s.
func (s Sources) TorrcPath() string {
	if s.Torrc != "" {
		return s.Torrc
	}
	return DefaultTorrc
}

// OptionInfo describes one known option.
type OptionInfo struct {
	Name string
	// List reports that lines of the option accumulate (LineList);
	// otherwise the last one wins.
	List bool
}

// Options lists the known options in table order.
func Options() []OptionInfo {
	out := make([]OptionInfo, len(options))
	for i := range options {
		out[i] = OptionInfo{Name: options[i].name, List: options[i].list}
	}
	return out
}

// Option returns the table entry for key (case-insensitive). The error
// wraps ErrUnknownOption or ErrRelayOption.
func Option(key string) (OptionInfo, error) {
	o, err := lookup(key)
	if err != nil {
		return OptionInfo{}, fmt.Errorf("option %q: %w", key, err)
	}
	return OptionInfo{Name: o.name, List: o.list}, nil
}

// merge combines layers as Build does and returns the effective lines of
// each option slot; a slot absent from the map is at its default.
func merge(layers [][]Line) (map[string][]Line, error) {
	merged := map[string][]Line{}
	for _, layer := range layers {
		touched := map[string]bool{}
		for _, l := range layer {
			opt, err := lookup(l.Key)
			if err != nil {
				return nil, errAt(l, canonicalName(l.Key), err)
			}
			slot := opt.slot()
			switch {
			case l.Command == Clear:
				delete(merged, slot)
				touched[slot] = true
			case l.Value == "" && opt.list:
			case l.Value == "":
				delete(merged, slot)
			case opt.list:
				if !touched[slot] && l.Command != Append {
					delete(merged, slot)
				}
				touched[slot] = true
				merged[slot] = append(merged[slot], l)
			default:
				merged[slot] = []Line{l}
			}
		}
	}
	return merged, nil
}

// Values returns the canonical name of option key and its current values
// in the configuration built from layers: the values of the lines in force
// or, if none, the default (no values for an option without one).
func Values(env Env, key string, layers ...[]Line) (name string, values []string, err error) {
	opt, err := lookup(key)
	if err != nil {
		return "", nil, fmt.Errorf("option %q: %w", key, err)
	}
	merged, err := merge(layers)
	if err != nil {
		return "", nil, err
	}
	if lines, ok := merged[opt.slot()]; ok {
		for _, l := range lines {
			if opt.group == "" || strings.EqualFold(l.Key, opt.name) {
				values = append(values, l.Value)
			}
		}
		return opt.name, values, nil
	}
	def := opt.def
	if opt.defFn != nil {
		c, err := Build(env, layers...)
		if err != nil {
			return "", nil, err
		}
		if def, err = opt.defFn(&builder{c: c, env: env, where: map[string]Line{}}); err != nil {
			return "", nil, &Error{Option: opt.name, Err: err}
		}
	}
	if def != "" {
		values = []string{def}
	}
	return opt.name, values, nil
}

// Dump returns the lines in force after merging layers, option by option
// in table order, as a torrc would list them: what SAVECONF writes when
// given the torrc and control-port layers.
func Dump(layers ...[]Line) ([]Line, error) {
	merged, err := merge(layers)
	if err != nil {
		return nil, err
	}
	var out []Line
	for i := range options {
		opt := &options[i]
		if opt.group != "" && !firstOfGroup(i) {
			continue
		}
		for _, l := range merged[opt.slot()] {
			name := opt.name
			if opt.group != "" {
				o, _ := lookup(l.Key)
				name = o.name
			}
			out = append(out, Line{Key: name, Value: l.Value})
		}
	}
	return out, nil
}

// FormatLines renders lines as torrc text, quoting values that would not
// read back unchanged.
func FormatLines(lines []Line) string {
	var sb strings.Builder
	for _, l := range lines {
		sb.WriteString(l.Key)
		if l.Value != "" {
			sb.WriteByte(' ')
			sb.WriteString(quoteValue(l.Value))
		}
		sb.WriteByte('\n')
	}
	return sb.String()
}

// quoteValue returns v as a torrc value: as it is when Lex reads it back
// unchanged, else as a C string.
func quoteValue(v string) string {
	plain := v == strings.TrimSpace(v) && !strings.HasPrefix(v, "\"")
	for i := 0; i < len(v) && plain; i++ {
		if c := v[i]; c == '#' || c == '\\' || c < 0x20 || c >= 0x7f {
			plain = false
		}
	}
	if plain {
		return v
	}
	return cstring.Quote(v)
}

// IsUnknownOption reports whether err says an option name is not known
// (or is a relay option).
func IsUnknownOption(err error) bool {
	return errors.Is(err, ErrUnknownOption) || errors.Is(err, ErrRelayOption)
}
