// Command render is `helm template` for one chart without Helm: the chart's templates run through Go's
// text/template with sprig and the functions and objects Helm adds, so the chart can be rendered and checked on a
// machine that has no helm binary (this repository's CI). It implements what the chart in helm/cluster uses:
// .Values (values.yaml with each --values file merged over it, Helm's rules), .Release, .Chart, .Capabilities,
// include, tpl, required, toYaml, fromYaml, fromYamlArray, toJson; output is a YAML stream with `# Source:` comments.
//
//	render [--values FILE]... [--name RELEASE] [--namespace NS] [--notes | --dump-values] CHART_DIR
//
// It does not check values.schema.json (helm does): tests/Cluster.Helm.Tests checks --dump-values against it.
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/template"

	"github.com/Masterminds/sprig"
	yaml "gopkg.in/yaml.v3"
)

type fileList []string

func (f *fileList) String() string     { return strings.Join(*f, ",") }
func (f *fileList) Set(v string) error { *f = append(*f, v); return nil }

func main() {
	var valueFiles fileList
	flag.Var(&valueFiles, "values", "a values file merged over the chart's values.yaml (repeatable, later wins)")
	name := flag.String("name", "release", "the release name")
	namespace := flag.String("namespace", "default", "the release namespace")
	notes := flag.Bool("notes", false, "render templates/NOTES.txt instead of the manifests")
	dumpValues := flag.Bool("dump-values", false, "print the merged values as JSON instead of rendering (what values.schema.json is checked against)")
	kubeVersion := flag.String("kube-version", "v1.31.0", "the Kubernetes version .Capabilities reports")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: render [--values FILE]... [--name RELEASE] [--namespace NS] [--notes] CHART_DIR")
		os.Exit(2)
	}
	if *dumpValues {
		values, err := mergedValues(flag.Arg(0), valueFiles)
		if err == nil {
			var j []byte
			j, err = json.MarshalIndent(values, "", "  ")
			os.Stdout.Write(append(j, '\n'))
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "render:", err)
			os.Exit(1)
		}
		return
	}
	out, err := render(flag.Arg(0), valueFiles, *name, *namespace, *kubeVersion, *notes)
	if err != nil {
		fmt.Fprintln(os.Stderr, "render:", err)
		os.Exit(1)
	}
	os.Stdout.WriteString(out)
}

func render(chartDir string, valueFiles []string, name, namespace, kubeVersion string, notes bool) (string, error) {
	chartMeta, err := readYamlMap(filepath.Join(chartDir, "Chart.yaml"))
	if err != nil {
		return "", err
	}
	values, err := mergedValues(chartDir, valueFiles)
	if err != nil {
		return "", err
	}
	chartName, _ := chartMeta["name"].(string)
	major, minor := kubeParts(kubeVersion)
	top := map[string]interface{}{
		"Values": values,
		"Chart":  capitalizeKeys(chartMeta),
		"Release": map[string]interface{}{
			"Name": name, "Namespace": namespace, "Service": "Helm", "IsInstall": true, "IsUpgrade": false, "Revision": 1,
		},
		"Capabilities": map[string]interface{}{
			"KubeVersion": map[string]interface{}{"Version": kubeVersion, "GitVersion": kubeVersion, "Major": major, "Minor": minor},
		},
		"Template": map[string]interface{}{"BasePath": chartName + "/templates"},
	}

	root := template.New("root").Option("missingkey=zero")
	funcs := sprig.TxtFuncMap()
	// Helm's own functions; include and tpl need the template set, so they close over root.
	funcs["toYaml"] = toYaml
	funcs["fromYaml"] = fromYaml
	funcs["fromYamlArray"] = fromYamlArray
	// helm template has no cluster to ask: its lookup answers an empty map, and so does this one.
	funcs["lookup"] = func(apiVersion, kind, namespace, name string) (map[string]interface{}, error) {
		return map[string]interface{}{}, nil
	}
	funcs["required"] = func(msg string, v interface{}) (interface{}, error) {
		if v == nil || v == "" {
			return nil, errors.New(msg)
		}
		return v, nil
	}
	funcs["include"] = func(name string, data interface{}) (string, error) {
		var buf bytes.Buffer
		err := root.ExecuteTemplate(&buf, name, data)
		return buf.String(), err
	}
	funcs["tpl"] = func(text string, data interface{}) (string, error) {
		t, err := root.Clone()
		if err != nil {
			return "", err
		}
		t, err = t.New("tpl").Parse(text)
		if err != nil {
			return "", err
		}
		var buf bytes.Buffer
		err = t.Execute(&buf, data)
		return strings.ReplaceAll(buf.String(), "<no value>", ""), err
	}
	root.Funcs(funcs)

	templatesDir := filepath.Join(chartDir, "templates")
	var paths []string
	err = filepath.Walk(templatesDir, func(p string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() {
			paths = append(paths, p)
		}
		return err
	})
	if err != nil {
		return "", err
	}
	sort.Strings(paths)
	names := map[string]string{}
	for _, p := range paths {
		rel, _ := filepath.Rel(chartDir, p)
		tname := chartName + "/" + filepath.ToSlash(rel)
		text, err := os.ReadFile(p)
		if err != nil {
			return "", err
		}
		if _, err := root.New(tname).Parse(string(text)); err != nil {
			return "", err
		}
		names[p] = tname
	}

	var out strings.Builder
	for _, p := range paths {
		base := filepath.Base(p)
		isNotes := base == "NOTES.txt"
		// Helpers define templates and render nothing; NOTES.txt is the install message, not a manifest.
		if strings.HasPrefix(base, "_") || isNotes != notes {
			continue
		}
		if !isNotes && !strings.HasSuffix(base, ".yaml") && !strings.HasSuffix(base, ".yml") && !strings.HasSuffix(base, ".tpl") {
			continue
		}
		scope := copyTop(top)
		scope["Template"] = map[string]interface{}{"Name": names[p], "BasePath": chartName + "/templates"}
		var buf bytes.Buffer
		if err := root.ExecuteTemplate(&buf, names[p], scope); err != nil {
			return "", err
		}
		text := strings.ReplaceAll(buf.String(), "<no value>", "")
		if notes {
			out.WriteString(text)
			continue
		}
		for _, doc := range splitDocuments(text) {
			fmt.Fprintf(&out, "---\n# Source: %s\n%s\n", names[p], doc)
		}
	}
	return out.String(), nil
}

// splitDocuments cuts one template's output at its `---` lines and drops documents that are only whitespace
// or comments, as Helm does.
func splitDocuments(text string) []string {
	var docs []string
	for _, doc := range strings.Split("\n"+text, "\n---") {
		doc = strings.Trim(doc, "\n")
		if strings.HasPrefix(doc, " ") || strings.HasPrefix(doc, "\t") {
			doc = strings.TrimLeft(doc, " \t")
		}
		meaningful := false
		for _, line := range strings.Split(doc, "\n") {
			t := strings.TrimSpace(line)
			if t != "" && !strings.HasPrefix(t, "#") {
				meaningful = true
				break
			}
		}
		if meaningful {
			docs = append(docs, strings.TrimRight(doc, " \n"))
		}
	}
	return docs
}

// mergedValues is the chart's values.yaml with each values file laid over it in order.
func mergedValues(chartDir string, valueFiles []string) (map[string]interface{}, error) {
	values, err := readYamlMap(filepath.Join(chartDir, "values.yaml"))
	if err != nil {
		return nil, err
	}
	for _, f := range valueFiles {
		override, err := readYamlMap(f)
		if err != nil {
			return nil, err
		}
		values = merge(values, override)
	}
	return values, nil
}

func readYamlMap(path string) (map[string]interface{}, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var raw interface{}
	if err := yaml.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	// Helm reads values through JSON, so every number is a float64 (and prints as 1e+06 unless the chart
	// converts it): the same round trip here keeps that class of template bug visible.
	j, err := json.Marshal(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	m := map[string]interface{}{}
	if err := json.Unmarshal(j, &m); err != nil {
		return nil, fmt.Errorf("%s: not a map (%w)", path, err)
	}
	return m, nil
}

// merge lays override over base as Helm merges values files: maps merge key by key, anything else replaces,
// and a null in the override deletes the key.
func merge(base, override map[string]interface{}) map[string]interface{} {
	out := map[string]interface{}{}
	for k, v := range base {
		out[k] = v
	}
	for k, v := range override {
		if v == nil {
			delete(out, k)
			continue
		}
		bm, bok := out[k].(map[string]interface{})
		om, ook := v.(map[string]interface{})
		if bok && ook {
			out[k] = merge(bm, om)
		} else {
			out[k] = v
		}
	}
	return out
}

func capitalizeKeys(m map[string]interface{}) map[string]interface{} {
	out := map[string]interface{}{}
	for k, v := range m {
		out[strings.ToUpper(k[:1])+k[1:]] = v
	}
	return out
}

func copyTop(top map[string]interface{}) map[string]interface{} {
	out := map[string]interface{}{}
	for k, v := range top {
		out[k] = v
	}
	return out
}

func kubeParts(v string) (string, string) {
	parts := strings.SplitN(strings.TrimPrefix(v, "v"), ".", 3)
	if len(parts) < 2 {
		return parts[0], "0"
	}
	return parts[0], parts[1]
}

// toYaml is Helm's: the YAML of a value without the trailing newline, so `nindent` places it.
func toYaml(v interface{}) string {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(v); err != nil {
		return ""
	}
	enc.Close()
	return strings.TrimSuffix(buf.String(), "\n")
}

func fromYaml(s string) map[string]interface{} {
	m := map[string]interface{}{}
	if err := yaml.Unmarshal([]byte(s), &m); err != nil {
		m["Error"] = err.Error()
	}
	return m
}

func fromYamlArray(s string) []interface{} {
	var a []interface{}
	if err := yaml.Unmarshal([]byte(s), &a); err != nil {
		return []interface{}{err.Error()}
	}
	return a
}
