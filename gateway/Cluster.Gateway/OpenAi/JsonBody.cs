using System.Text.Json;
using Microsoft.AspNetCore.Http;

namespace Cluster.Gateway.OpenAi;

/// <summary>
/// Reads a request body as a JSON document that later reads cannot fail on. JsonDocument checks structure but
/// decodes strings lazily, so invalid UTF-8 inside a string or a lone surrogate escape ("\ud800") would only throw
/// when a field is read, deep in request parsing; every string and property name is decoded here once instead,
/// and duplicate keys are refused rather than resolved silently to one of them.
/// </summary>
public static class JsonBody
{
    public const int MaxDepth = 64;

    private static readonly JsonDocumentOptions Options = new() { MaxDepth = MaxDepth, AllowDuplicateProperties = false };

    public static async Task<JsonDocument> ReadAsync(HttpRequest request, CancellationToken ct)
    {
        JsonDocument document;
        try
        {
            document = await JsonDocument.ParseAsync(request.Body, Options, ct).ConfigureAwait(false);
        }
        catch (JsonException e)
        {
            throw new GatewayException(GatewayErrorKind.InvalidRequest, $"the request body is not valid JSON ({e.Message})");
        }
        try
        {
            CheckStrings(document.RootElement);
            return document;
        }
        catch (InvalidOperationException e)
        {
            document.Dispose();
            throw new GatewayException(GatewayErrorKind.InvalidRequest, $"the request body holds a string that is not valid Unicode ({e.Message})");
        }
    }

    // Depth is bounded by MaxDepth, so recursion is safe.
    private static void CheckStrings(JsonElement element)
    {
        switch (element.ValueKind)
        {
            case JsonValueKind.String:
                _ = element.GetString();
                break;
            case JsonValueKind.Array:
                foreach (JsonElement item in element.EnumerateArray()) CheckStrings(item);
                break;
            case JsonValueKind.Object:
                foreach (JsonProperty property in element.EnumerateObject())
                {
                    _ = property.Name;
                    CheckStrings(property.Value);
                }
                break;
        }
    }
}
