// Command gen runs Go's text/template over the cases in
// tests/template/cases.txt and writes what Go produced (output or error)
// to tests/template/golden/go.json. The cargo test
// (tests/it/template.rs) renders the same cases with watchpost's engine
// and compares byte for byte.
//
// Run from the repository root:
//
//	go run tests/template/gen/main.go
//
// It needs only the Go standard library. The functions registered below
// are thin wrappers over the standard library under the names watchpost's
// Alertmanager and test function sets use, so their Go behaviour (time
// layouts, regexp, url escaping, JSON) is pinned too.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"text/template"
	"time"
)

type testCase struct {
	Name    string
	Tmpl    string
	Data    string
	Option  string
	Exec    string
	Adds    []add
	HasData bool
	HasTmpl bool
}

type add struct {
	Name string
	Text string
}

type result struct {
	Name   string  `json:"name"`
	Output *string `json:"output,omitempty"`
	Error  *string `json:"error,omitempty"`
}

func funcs() template.FuncMap {
	return template.FuncMap{
		"toUpper":        strings.ToUpper,
		"toLower":        strings.ToLower,
		"trimSpace":      strings.TrimSpace,
		"urlQueryEscape": url.QueryEscape,
		"urlUnescape":    url.QueryUnescape,
		"match":          regexp.MatchString,
		"reReplaceAll": func(pattern, repl, text string) string {
			return regexp.MustCompile(pattern).ReplaceAllString(text, repl)
		},
		"join":        func(sep string, s []string) string { return strings.Join(s, sep) },
		"stringSlice": func(s ...string) []string { return s },
		"date":        func(layout string, t time.Time) string { return t.Format(layout) },
		"tz": func(name string, t time.Time) (time.Time, error) {
			loc, err := time.LoadLocation(name)
			if err != nil {
				return time.Time{}, err
			}
			return t.In(loc), nil
		},
		"toJson": func(v interface{}) (string, error) {
			b, err := json.Marshal(v)
			if err != nil {
				return "", err
			}
			return string(b), nil
		},
		// Test helpers: build typed values JSON data cannot express.
		"unixTime": func(sec, nsec int) time.Time { return time.Unix(int64(sec), int64(nsec)).UTC() },
		"inZone": func(name string, offset int, t time.Time) time.Time {
			return t.In(time.FixedZone(name, offset))
		},
		"dur":  func(ns int) time.Duration { return time.Duration(ns) },
		"list": func(v ...interface{}) []interface{} { return v },
		"fail": func(msg string) (string, error) { return "", errors.New(msg) },
		"num":  func(s string) (float64, error) { return strconv.ParseFloat(s, 64) },
	}
}

func parseCases(path string) ([]testCase, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var cases []testCase
	var cur *testCase
	var section string
	var lines []string
	flush := func() {
		if cur == nil || section == "" {
			return
		}
		for len(lines) > 0 && lines[len(lines)-1] == "" {
			lines = lines[:len(lines)-1]
		}
		text := strings.Join(lines, "\n")
		switch {
		case section == "tmpl":
			cur.Tmpl, cur.HasTmpl = text, true
		case section == "data":
			cur.Data, cur.HasData = text, true
		case section == "option":
			cur.Option = strings.TrimSpace(text)
		case section == "exec":
			cur.Exec = strings.TrimSpace(text)
		case strings.HasPrefix(section, "add "):
			cur.Adds = append(cur.Adds, add{strings.TrimPrefix(section, "add "), text})
		}
		lines = nil
	}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "=== "):
			flush()
			cases = append(cases, testCase{Name: strings.TrimPrefix(line, "=== ")})
			cur = &cases[len(cases)-1]
			section = ""
		case strings.HasPrefix(line, "--- ") && cur != nil:
			flush()
			section = strings.TrimPrefix(line, "--- ")
		case section != "":
			lines = append(lines, line)
		}
	}
	flush()
	return cases, sc.Err()
}

func run(c testCase) (string, error) {
	root := template.New("").Funcs(funcs())
	if c.Option != "" {
		root.Option(c.Option)
	}
	for _, a := range c.Adds {
		if _, err := root.New(a.Name).Parse(a.Text); err != nil {
			return "", err
		}
	}
	if _, err := root.New("t").Parse(c.Tmpl); err != nil {
		return "", err
	}
	var data interface{}
	if c.HasData {
		if err := json.Unmarshal([]byte(c.Data), &data); err != nil {
			return "", fmt.Errorf("bad test data: %v", err)
		}
	}
	exec := "t"
	if c.Exec != "" {
		exec = c.Exec
	}
	var buf bytes.Buffer
	err := root.ExecuteTemplate(&buf, exec, data)
	return buf.String(), err
}

func main() {
	cases, err := parseCases("tests/template/cases.txt")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	seen := map[string]bool{}
	var out []result
	for _, c := range cases {
		if seen[c.Name] {
			fmt.Fprintf(os.Stderr, "duplicate case name %q\n", c.Name)
			os.Exit(1)
		}
		seen[c.Name] = true
		s, err := run(c)
		r := result{Name: c.Name}
		if err != nil {
			msg := err.Error()
			r.Error = &msg
		} else {
			r.Output = &s
		}
		out = append(out, r)
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(map[string]interface{}{
		"generator": "tests/template/gen (Go " + strings.TrimPrefix(runtime.Version(), "go") + " text/template)",
		"cases":     out,
	}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if err := os.WriteFile("tests/template/golden/go.json", b.Bytes(), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Printf("%d cases\n", len(out))
}
