using System.Text.Json;
using Cluster.AttentionNode;
using Cluster.Gateway.Grpc;
using Cluster.Gateway.OpenAi;
using Cluster.Protos.V1;
using Grpc.Core;

namespace Cluster.Gateway.Tests;

/// <summary>
/// One set of ranges at the three doors: OpenAI's JSON, the public gRPC API and the attention node's Generate
/// accept and refuse the same values at the edges, naming the field as each spells it.
/// </summary>
public sealed class SamplingRangesTests
{
    private static ServedModel Model => TestModel.Served;

    public static TheoryData<string, double, bool> Edges() => new()
    {
        { "temperature", 0, true },
        { "temperature", 2, true },
        { "temperature", 2.001, false },
        { "temperature", -0.001, false },
        { "top_p", 1, true },
        { "top_p", 0.001, true },
        { "top_p", 0, false },
        { "top_p", 1.001, false },
        { "top_k", 0, true },
        { "top_k", 129_280, true },
        { "top_k", 129_281, false },
        { "max_tokens", 1, true },
        { "max_tokens", 0, false },
    };

    [Theory]
    [MemberData(nameof(Edges))]
    public void Every_door_draws_the_same_line(string field, double value, bool valid)
    {
        Assert.Equal(129_280, Model.VocabSize);
        AssertDoor(valid, field, () => ApiRequest.ParseCompletion(Json(field, value), Model), (GatewayException e) => e.Param);
        AssertDoor(valid, "sampling." + field, () => InferenceService.Validate(Grpc(field, value), Model), (RpcException e) => Detail(e));
        AssertDoor(valid, "sampling." + field, () => RequestValidation.Validate(Node(field, value), Model.Config, "r"), (RpcException e) => Detail(e));
    }

    [Fact]
    public void Stop_strings_are_limited_alike_at_both_gateway_doors_and_refused_by_the_node()
    {
        var five = new SamplingParams { Stop = { "a", "b", "c", "d", "e" } };
        Assert.Equal("stop", Assert.Throws<GatewayException>(() => ApiRequest.ParseCompletion(Parse("""{"model":"tiny-test","prompt":[0],"stop":["a","b","c","d","e"]}"""), Model)).Param);
        Assert.Equal("stop", Assert.Throws<GatewayException>(() => ApiRequest.ParseCompletion(Parse("""{"model":"tiny-test","prompt":[0],"stop":""}"""), Model)).Param);
        Assert.StartsWith("sampling.stop", Assert.Throws<RpcException>(() => InferenceService.Validate(new GenerateRequest { PromptTokenIds = { 0 }, Sampling = five }, Model)).Status.Detail);
        var node = new TokenGenerateRequest { PromptTokenIds = { 0 }, Sampling = new SamplingParams { Stop = { "a" } } };
        RpcException refused = Assert.Throws<RpcException>(() => RequestValidation.Validate(node, Model.Config, "r"));
        Assert.Equal(StatusCode.InvalidArgument, refused.StatusCode);
        Assert.StartsWith("sampling.stop", refused.Status.Detail);
    }

    [Fact]
    public void Top_logprobs_is_0_to_20_at_the_json_door_and_the_node()
    {
        ApiRequest.ParseCompletion(Parse("""{"model":"tiny-test","prompt":[0],"logprobs":20}"""), Model);
        Assert.Equal("logprobs", Assert.Throws<GatewayException>(() => ApiRequest.ParseCompletion(Parse("""{"model":"tiny-test","prompt":[0],"logprobs":21}"""), Model)).Param);
        RequestValidation.Validate(new TokenGenerateRequest { PromptTokenIds = { 0 }, TopLogprobs = 20 }, Model.Config, "r");
        Assert.StartsWith("top_logprobs", Assert.Throws<RpcException>(() =>
            RequestValidation.Validate(new TokenGenerateRequest { PromptTokenIds = { 0 }, TopLogprobs = 21 }, Model.Config, "r")).Status.Detail);
    }

    private static void AssertDoor<TError>(bool valid, string name, Action door, Func<TError, string?> field) where TError : Exception
    {
        if (valid)
        {
            door();
            return;
        }
        TError e = Assert.Throws<TError>(door);
        Assert.Equal(name, field(e));
        if (e is RpcException rpc) Assert.Equal(StatusCode.InvalidArgument, rpc.StatusCode);
    }

    /// <summary>The field named at the start of a status detail ("sampling.top_p must be ...").</summary>
    private static string Detail(RpcException e) => e.Status.Detail.Split(' ', ':')[0];

    private static JsonElement Parse(string json) => JsonDocument.Parse(json).RootElement;

    private static JsonElement Json(string field, double value) =>
        Parse($$"""{"model":"tiny-test","prompt":[0,1],"{{field}}":{{value.ToString(System.Globalization.CultureInfo.InvariantCulture)}}}""");

    private static SamplingParams Sampling(string field, double value)
    {
        var s = new SamplingParams();
        switch (field)
        {
            case "temperature": s.Temperature = (float)value; break;
            case "top_p": s.TopP = (float)value; break;
            case "top_k": s.TopK = (uint)value; break;
            case "max_tokens": s.MaxTokens = (uint)value; break;
        }
        return s;
    }

    private static GenerateRequest Grpc(string field, double value) => new() { PromptTokenIds = { 0, 1 }, Sampling = Sampling(field, value) };

    private static TokenGenerateRequest Node(string field, double value) => new() { PromptTokenIds = { 0, 1 }, Sampling = Sampling(field, value) };
}
