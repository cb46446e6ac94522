using Cluster.Gateway.Generation;

namespace Cluster.Gateway.Tests;

public class StopMatcherTests
{
    [Fact]
    public void Without_stops_text_passes_through_at_once()
    {
        var m = new StopMatcher([]);
        Assert.Equal("abc", m.Push("abc"));
        Assert.Equal("", m.Flush());
        Assert.False(m.Stopped);
    }

    [Fact]
    public void A_stop_split_across_pieces_is_held_back_and_never_shown()
    {
        var m = new StopMatcher(["o w"]);
        Assert.Equal("Hel", m.Push("Hello"[..3]));
        Assert.Equal("l", m.Push("lo"));      // "o" could start "o w"
        Assert.Equal("", m.Push(" "));        // "o " still could
        Assert.Equal("", m.Push("world"));    // completes it
        Assert.True(m.Stopped);
        Assert.Equal("", m.Push("more"));
        Assert.Equal("", m.Flush());
    }

    [Fact]
    public void A_held_prefix_that_never_completes_is_released()
    {
        var m = new StopMatcher(["END"]);
        Assert.Equal("ab", m.Push("abEN"));
        Assert.Equal("ENx", m.Push("x"));
        Assert.Equal("", m.Push("E"));
        Assert.Equal("E", m.Flush());
        Assert.False(m.Stopped);
    }

    [Fact]
    public void The_stop_complete_first_wins()
    {
        var m = new StopMatcher(["zzz", "b", "abc"]);
        Assert.Equal("xa", m.Push("xabczzz")); // "b" is complete before "abc"
        Assert.True(m.Stopped);
        m = new StopMatcher(["c", "abc"]);
        Assert.Equal("x", m.Push("xabc")); // both end at the same character: the longer
        Assert.True(m.Stopped);
    }

    [Fact]
    public void Random_texts_and_splits_agree_with_the_whole_string_search()
    {
        var rng = new Random(12345);
        const string alphabet = "ab c";
        for (int trial = 0; trial < 3000; trial++)
        {
            string text = RandomString(rng, alphabet, rng.Next(0, 30));
            string[] stops = Enumerable.Range(0, rng.Next(1, 4)).Select(_ => RandomString(rng, alphabet, rng.Next(1, 5))).ToArray();
            // Reference: the stop complete first, read one character at a time.
            int first = -1;
            for (int end = 1; end <= text.Length && first < 0; end++)
                foreach (string s in stops.OrderByDescending(s => s.Length))
                    if (end >= s.Length && text.AsSpan(end - s.Length, s.Length).SequenceEqual(s)) { first = end - s.Length; break; }
            string expected = first >= 0 ? text[..first] : text;

            var m = new StopMatcher(stops);
            var shown = new System.Text.StringBuilder();
            for (int at = 0; at < text.Length;)
            {
                int n = Math.Min(rng.Next(1, 5), text.Length - at);
                shown.Append(m.Push(text.Substring(at, n)));
                at += n;
                // Never ahead of what the whole text allows.
                Assert.True(expected.StartsWith(shown.ToString(), StringComparison.Ordinal),
                    $"text '{text}', stops [{string.Join("|", stops)}]: showed '{shown}' beyond '{expected}'");
            }
            shown.Append(m.Flush());
            Assert.Equal(expected, shown.ToString());
            Assert.Equal(first >= 0, m.Stopped);
        }
    }

    private static string RandomString(Random rng, string alphabet, int length)
    {
        var chars = new char[length];
        for (int i = 0; i < length; i++) chars[i] = alphabet[rng.Next(alphabet.Length)];
        return new string(chars);
    }
}
