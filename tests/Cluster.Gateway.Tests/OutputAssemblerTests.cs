using Cluster.Gateway.Generation;
using Cluster.Protos.V1;

namespace Cluster.Gateway.Tests;

public class OutputAssemblerTests
{
    private static readonly Lazy<ServedModel> s_model = new(() => ServedModel.Load(TestModel.Dir, "m", null));
    private static ServedModel Model => s_model.Value;

    private static CompletionRequest Request(string[]? stops = null, bool reasoning = false, bool logprobs = false) => new()
    {
        PromptIds = [0],
        Sampling = new SamplingParams { MaxTokens = 100, Stop = { stops ?? [] } },
        SplitReasoning = reasoning,
        Logprobs = logprobs,
        TopLogprobs = logprobs ? 2 : 0,
    };

    /// <summary>Feeds the ids of <paramref name="text"/> as node events, the last one finishing with <paramref name="finish"/>.</summary>
    private static List<OutputDelta> Feed(OutputAssembler a, int[] ids, string finish = "length")
    {
        var deltas = new List<OutputDelta>();
        for (int i = 0; i < ids.Length && a.FinishReason is null; i++)
        {
            var e = new TokenEvent { TokenId = (uint)ids[i], Logprob = -0.5f * i, PromptTokens = i == 0 ? 1u : 0u };
            e.TopLogprobs.Add(new TopLogprob { TokenId = (uint)ids[i], Logprob = -0.5f * i });
            e.TopLogprobs.Add(new TopLogprob { TokenId = 100, Logprob = -3f });
            if (i == ids.Length - 1) e.FinishReason = finish;
            deltas.Add(a.Push(e));
        }
        return deltas;
    }

    [Fact]
    public void Text_streams_in_whole_characters_and_adds_up_to_the_decoded_ids()
    {
        string text = "Héllo wörld, 世界 🙂 ok";
        int[] ids = Model.Tokenizer.Encode(text);
        var a = new OutputAssembler(Model, Request());
        var deltas = Feed(a, ids);
        Assert.Equal(text, string.Concat(deltas.Select(d => d.Text)));
        Assert.DoesNotContain(deltas, d => d.Text.Contains('\uFFFD'));
        Assert.Equal(ids, deltas.SelectMany(d => d.TokenIds));
        Assert.Equal("length", a.FinishReason);
        Assert.Equal(ids.Length, a.CompletionTokens);
    }

    [Fact]
    public void A_stop_string_across_tokens_ends_the_output_before_it()
    {
        string text = "The quick brown fox jumps over the lazy dog";
        int[] ids = Model.Tokenizer.Encode(text);
        var a = new OutputAssembler(Model, Request(["n fox j", "zzz"], logprobs: true));
        var deltas = Feed(a, ids);
        Assert.Equal("The quick brow", string.Concat(deltas.Select(d => d.Text)));
        Assert.Equal("stop", a.FinishReason);
        // The tokens shown are those whose text began before the stop string: the prefix of ids up to " brown".
        int[] shown = deltas.SelectMany(d => d.TokenIds).ToArray();
        Assert.Equal(ids[..shown.Length], shown);
        Assert.Equal("The quick brown", Model.Tokenizer.Decode(shown));
        Assert.Equal(shown.Length, deltas.Sum(d => d.Logprobs?.Count ?? 0));
        // The node was not read past the token that completed the stop string.
        Assert.True(a.CompletionTokens < ids.Length);
    }

    [Fact]
    public void An_eos_token_finishes_without_text_and_counts_as_a_completion_token()
    {
        int[] ids = [.. Model.Tokenizer.Encode("Hi there"), Model.Tokenizer.EosId!.Value];
        var a = new OutputAssembler(Model, Request());
        var deltas = Feed(a, ids, finish: "stop");
        Assert.Equal("Hi there", string.Concat(deltas.Select(d => d.Text)));
        Assert.Equal("stop", a.FinishReason);
        Assert.Equal(ids.Length, a.CompletionTokens);
    }

    [Fact]
    public void Think_tags_split_into_reasoning_and_answer_token_by_token()
    {
        int[] ids = Model.Tokenizer.Encode("<think>Let me see.</think>The answer is 4.");
        var a = new OutputAssembler(Model, Request(reasoning: true));
        var deltas = Feed(a, ids);
        Assert.Equal("Let me see.", string.Concat(deltas.Select(d => d.Reasoning)));
        Assert.Equal("The answer is 4.", string.Concat(deltas.Select(d => d.Text)));
    }

    [Fact]
    public void Logprobs_name_each_token_and_its_alternatives()
    {
        int[] ids = Model.Tokenizer.Encode("one two");
        var a = new OutputAssembler(Model, Request(logprobs: true));
        var lp = Feed(a, ids).SelectMany(d => d.Logprobs ?? []).ToList();
        Assert.Equal(ids.Length, lp.Count);
        for (int i = 0; i < ids.Length; i++)
        {
            Assert.Equal(ids[i], lp[i].Id);
            Assert.Equal(Model.Tokenizer.Decode([ids[i]]), lp[i].Token);
            Assert.Equal(-0.5f * i, lp[i].Logprob);
            Assert.Equal([ids[i], 100], lp[i].Top.Select(t => t.Id));
        }
    }

    [Fact]
    public void Nothing_is_accepted_after_the_output_is_complete()
    {
        var a = new OutputAssembler(Model, Request());
        a.Push(new TokenEvent { TokenId = 300, FinishReason = "length" });
        Assert.Throws<InvalidOperationException>(() => a.Push(new TokenEvent { TokenId = 301 }));
    }
}
