using System.Security.Cryptography;
using System.Text;
using Cluster.Gateway.Security;

namespace Cluster.Gateway.Tests;

/// <summary>The keys file: what an operator writes by hand, and one-line errors naming the line of each mistake.</summary>
public sealed class ApiKeysFileTests
{
    private const string File = """
        # clients of the gateway
        alice   sk-alice-0123456789abcdef   rpm=60 tpm=200000

        batch   sha256:{0}   # the hash only
        bob	sk-bob-#-0123456789abcdef	tpm=5
        """;

    private static string Hex(string key) => Convert.ToHexString(SHA256.HashData(Encoding.ASCII.GetBytes(key)));

    [Fact]
    public void Lines_give_names_keys_and_limits_and_keys_are_found_by_value()
    {
        ApiKeys keys = ApiKeys.Parse(File.Replace("{0}", Hex("sk-batch-0123456789abcdef")), "keys.txt");
        Assert.False(keys.IsOpen);
        Assert.Equal(["alice", "batch", "bob"], keys.Keys.Select(k => k.Name));
        ApiKey alice = keys.Keys[0];
        Assert.Equal((60, 200000), (alice.RequestsPerMinute!.Value, alice.TokensPerMinute!.Value));
        Assert.Null(keys.Keys[1].RequestsPerMinute);
        Assert.Equal(5, keys.Keys[2].TokensPerMinute);

        Assert.Same(alice, keys.Find("sk-alice-0123456789abcdef"));
        Assert.Same(keys.Keys[1], keys.Find("sk-batch-0123456789abcdef"));
        // A '#' inside a key is part of it; one starting a field begins a comment.
        Assert.Same(keys.Keys[2], keys.Find("sk-bob-#-0123456789abcdef"));
        Assert.Null(keys.Find("sk-alice-0123456789abcdeF"));
        Assert.Null(keys.Find(""));
        Assert.Null(keys.Find(null));
        // The key itself is not kept, only its hash.
        Assert.DoesNotContain("sk-alice", alice.ToString());
    }

    [Theory]
    [InlineData("alice", "keys.txt:2: expected 'NAME KEY [rpm=N] [tpm=N]', got only 'alice'")]
    [InlineData("alice short-key", "keys.txt:2: the key must have at least 16 characters (has 9)")]
    [InlineData("al/ice sk-0123456789abcdef", "keys.txt:2: the name 'al/ice' may hold only letters, digits, '.', '_' and '-' (at most 64)")]
    [InlineData("ok sk-0123456789abcdef", "keys.txt:2: the name 'ok' is given twice")]
    [InlineData("other sk-ok-0123456789abcdef", "keys.txt:2: the key of 'other' is also 'ok''s")]
    [InlineData("alice sk-0123456789abcdef rpm=0", "keys.txt:2: 'rpm=0' is not rpm=N or tpm=N with N at least 1")]
    [InlineData("alice sk-0123456789abcdef rpm=x", "keys.txt:2: 'rpm=x' is not rpm=N or tpm=N with N at least 1")]
    [InlineData("alice sk-0123456789abcdef rpm=1 rpm=2", "keys.txt:2: rpm is given twice")]
    [InlineData("alice sk-0123456789abcdef qps=2", "keys.txt:2: unknown limit 'qps' (rpm: requests per minute, tpm: tokens per minute)")]
    [InlineData("alice sha256:abcd", "keys.txt:2: 'sha256:' must be followed by 64 hexadecimal digits (got 4 characters)")]
    public void A_mistake_is_one_line_naming_the_line(string line, string message)
    {
        var e = Assert.Throws<FormatException>(() => ApiKeys.Parse("ok sk-ok-0123456789abcdef\n" + line + "\n", "keys.txt"));
        Assert.Equal(message, e.Message);
    }

    [Fact]
    public void The_environment_variable_holds_the_files_content_and_a_file_named_wins()
    {
        string? before = Environment.GetEnvironmentVariable(ApiKeys.EnvironmentVariable);
        string path = Path.GetTempFileName();
        try
        {
            Environment.SetEnvironmentVariable(ApiKeys.EnvironmentVariable, "env sk-env-0123456789abcdef rpm=3");
            Assert.Equal("env", Assert.Single(ApiKeys.Load(null).Keys).Name);
            System.IO.File.WriteAllText(path, "file sk-file-0123456789abcdef\n");
            Assert.Equal("file", Assert.Single(ApiKeys.Load(path).Keys).Name);
            Environment.SetEnvironmentVariable(ApiKeys.EnvironmentVariable, null);
            Assert.True(ApiKeys.Load(null).IsOpen);
            Assert.Throws<FileNotFoundException>(() => ApiKeys.Load(path + ".missing"));
            Environment.SetEnvironmentVariable(ApiKeys.EnvironmentVariable, "env short");
            Assert.StartsWith($"{ApiKeys.EnvironmentVariable}:1:", Assert.Throws<FormatException>(() => ApiKeys.Load(null)).Message);
        }
        finally
        {
            Environment.SetEnvironmentVariable(ApiKeys.EnvironmentVariable, before);
            System.IO.File.Delete(path);
        }
    }
}
