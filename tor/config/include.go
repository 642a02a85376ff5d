package config

import (
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// MaxIncludeDepth is how deeply files may %include each other: the torrc
// itself is level 1 and no file may be read at a level above 31, as with
// C tor's MAX_INCLUDE_RECURSION_LEVEL.
const MaxIncludeDepth = 31

// ReadFile reads and lexes the torrc at path and expands its %include lines.
func ReadFile(path string) ([]Line, error) {
	return readFile(path, 1)
}

func readFile(path string, depth int) ([]Line, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, wrapErr("reading configuration file", "", err)
	}
	lines, err := Lex(data, path)
	if err != nil {
		return nil, err
	}
	return expandIncludes(lines, depth)
}

// expandIncludes replaces each "%include PATH" line (the keyword is
// case-sensitive, as in C tor) by the lines of the files it names.
// lines were read at include level depth.
func expandIncludes(lines []Line, depth int) ([]Line, error) {
	var out []Line
	for _, l := range lines {
		if l.Key != "%include" {
			out = append(out, l)
			continue
		}
		if depth+1 > MaxIncludeDepth {
			return nil, errAt(l, "%include", errors.New("more than "+strconv.Itoa(MaxIncludeDepth)+" nested %includes"))
		}
		files, err := includeFiles(l.Value)
		if err != nil {
			return nil, errAt(l, "%include", err)
		}
		for _, f := range files {
			sub, err := readFile(f, depth+1)
			if err != nil {
				return nil, errAt(l, "%include", err)
			}
			out = append(out, sub...)
		}
	}
	return out, nil
}

// includeFiles lists the files a %include of pattern reads, in order, as
// C tor's config_get_file_list: a glob pattern expands to its sorted matches;
// a file is read as is; a directory contributes its regular files (not
// subdirectories) in lexical order, skipping names that start with '.'.
// Relative paths are relative to the working directory, as in C tor.
func includeFiles(pattern string) ([]string, error) {
	if pattern == "" {
		return nil, errors.New("no file or directory given")
	}
	paths := []string{pattern}
	if strings.ContainsAny(pattern, "*?[") {
		m, err := filepath.Glob(pattern)
		if err != nil {
			return nil, wrapErr("bad pattern %q", pattern, err)
		}
		sort.Strings(m)
		paths = m
	}
	var files []string
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			return nil, wrapErr("error reading included configuration file or directory %q", p, err)
		}
		if !st.IsDir() {
			files = append(files, p)
			continue
		}
		entries, err := os.ReadDir(p)
		if err != nil {
			return nil, wrapErr("error reading included configuration directory %q", p, err)
		}
		// os.ReadDir sorts by name already.
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), ".") {
				continue
			}
			full := filepath.Join(p, e.Name())
			st, err := os.Stat(full)
			if err != nil || !st.Mode().IsRegular() {
				continue
			}
			files = append(files, full)
		}
	}
	return files, nil
}
