package config

import (
	"errors"
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
		return OptionInfo{}, wrapErr("option %q", key, err)
	}
	return OptionInfo{Name: o.name, List: o.list}, nil
}

// Values returns the canonical name of option key and its current values
// in the configuration built from layers: the values of the lines in force
// or, if none, the default (no values for an option without one).
func Values(env Env, key string, layers ...[]Line) (name string, values []string, err error) {
	opt, err := lookup(key)
	if err != nil {
		return "", nil, wrapErr("option %q", key, err)
	}
	merged, err := merge(layers, nil)
	if err != nil {
		return "", nil, err
	}
	if lines, ok := merged[opt.slot()]; ok {
		for _, l := range inForce(opt, lines) {
			if opt.group == "" || strings.EqualFold(l.Key, opt.name) {
				values = append(values, l.Value)
			}
		}
		return opt.name, values, nil
	}
	b := &builder{c: &Config{}, env: env}
	if opt.defFn != nil {
		if b.c, err = Build(env, layers...); err != nil {
			return "", nil, err
		}
	}
	def, err := opt.defaultValue(b)
	if err != nil {
		return "", nil, err
	}
	if def != "" {
		values = []string{def}
	}
	return opt.name, values, nil
}

// inForce returns the lines of opt merge kept that are in force: all of
// a list option's, the last of a single-valued option's.
func inForce(opt *option, lines []Line) []Line {
	if opt.list || len(lines) == 0 {
		return lines
	}
	return lines[len(lines)-1:]
}

// Dump returns the lines in force after merging layers, option by option
// in table order, as a torrc would list them: what SAVECONF writes when
// given the torrc and control-port layers.
func Dump(layers ...[]Line) ([]Line, error) {
	merged, err := merge(layers, nil)
	if err != nil {
		return nil, err
	}
	var out []Line
	for i := range options {
		opt := &options[i]
		if opt.group != "" && !firstOfGroup(i) {
			continue
		}
		for _, l := range inForce(opt, merged[opt.slot()]) {
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
