using System.Text.RegularExpressions;

namespace Cluster.Cli.Tests;

/// <summary>docs/ARCHITECTURE.md is the repository's map: every path it names must exist, or the map has drifted.</summary>
public sealed partial class ArchitectureDocTests
{
    // A backquoted repository path: starts with a top-level room and has at least one slash.
    [GeneratedRegex(@"`((?:protos|transport|engine|expert-node|attention-node|gateway|cli|tests|bench|docs|helm)/[^`\s]*)`")]
    private static partial Regex PathPattern();

    [Fact]
    public void Every_path_the_map_names_exists()
    {
        string doc = File.ReadAllText(Path.Combine(ClusterProcess.RepoRoot, "docs", "ARCHITECTURE.md"));
        var named = PathPattern().Matches(doc).Select(m => m.Groups[1].Value).Distinct().ToList();
        Assert.True(named.Count > 40, $"the map names only {named.Count} paths");
        var missing = named.Where(p => !File.Exists(Path.Combine(ClusterProcess.RepoRoot, p)) && !Directory.Exists(Path.Combine(ClusterProcess.RepoRoot, p))).ToList();
        Assert.True(missing.Count == 0, "docs/ARCHITECTURE.md names paths that do not exist: " + string.Join(", ", missing));
    }

    [Fact]
    public void Every_page_the_readme_links_exists()
    {
        string readme = File.ReadAllText(Path.Combine(ClusterProcess.RepoRoot, "README.md"));
        var links = Regex.Matches(readme, @"\]\(((?:docs|bench)/[^)#]+)").Select(m => m.Groups[1].Value).ToList();
        Assert.Contains("docs/ARCHITECTURE.md", links);
        Assert.All(links, l => Assert.True(File.Exists(Path.Combine(ClusterProcess.RepoRoot, l)), $"README.md links {l}, which does not exist"));
    }
}
