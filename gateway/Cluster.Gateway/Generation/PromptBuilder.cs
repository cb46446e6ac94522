using Cluster.Tokenizer;

namespace Cluster.Gateway.Generation;

/// <summary>Prompt ids from chat messages, text or ids, checked against the vocabulary and the context length.</summary>
public sealed class PromptBuilder(ServedModel model)
{
    /// <summary>Renders the chat template (with the assistant's generation prompt) and tokenizes it.</summary>
    public (int[] Ids, bool StartsInReasoning) FromMessages(IReadOnlyList<ChatMessage> messages, string param)
    {
        if (messages.Count == 0) throw GatewayException.Invalid(param, $"'{param}' must hold at least one message");
        string text;
        try { text = model.Template.Render(messages, addGenerationPrompt: true); }
        catch (ArgumentException e) { throw GatewayException.Invalid(param, e.Message); }
        // The template writes BOS as text; the tokenizer turns it into its id.
        int[] ids = model.Tokenizer.Encode(text);
        bool thinking = text.TrimEnd().EndsWith(ReasoningParser.StartTag, StringComparison.Ordinal);
        return (CheckIds(ids, param), thinking);
    }

    /// <summary>Tokenizes a text prompt with BOS, as the model was trained.</summary>
    public int[] FromText(string text, string param)
    {
        if (text.Length == 0) throw GatewayException.Invalid(param, $"'{param}' must not be empty");
        int[] ids = model.Tokenizer.Encode(text, addSpecialTokens: true);
        if (model.Config.BosTokenId is int bos && (ids.Length == 0 || ids[0] != bos)) ids = [bos, .. ids];
        return CheckIds(ids, param);
    }

    public int[] FromIds(IReadOnlyList<long> ids, string param)
    {
        if (ids.Count == 0) throw GatewayException.Invalid(param, $"'{param}' must not be empty");
        var result = new int[ids.Count];
        for (int i = 0; i < result.Length; i++)
        {
            if (ids[i] < 0 || ids[i] >= model.VocabSize)
                throw GatewayException.Invalid(param, $"{param}[{i}] = {ids[i]} is not a token id of this model (0..{model.VocabSize - 1})");
            result[i] = (int)ids[i];
        }
        return result;
    }

    /// <summary>
    /// The completion budget: as asked, or the default capped by what the context leaves; fails when prompt + budget
    /// do not fit.
    /// </summary>
    public int MaxTokens(int promptTokens, int? requested, string promptParam)
    {
        int room = model.MaxModelLen - promptTokens;
        if (requested is int n ? n > room : room < 1)
            throw new GatewayException(GatewayErrorKind.InvalidRequest,
                $"This model's maximum context length is {model.MaxModelLen} tokens. However, you requested {promptTokens + (requested ?? 1)} tokens "
                + $"({promptTokens} in the prompt, {requested ?? 1} for the completion). Please reduce the prompt or the completion length.",
                promptParam, "context_length_exceeded");
        return requested ?? Math.Min(model.DefaultMaxTokens, room);
    }

    private int[] CheckIds(int[] ids, string param)
    {
        // The tokenizer knows more ids than a small synthetic checkpoint embeds.
        foreach (int id in ids)
            if (id >= model.VocabSize)
                throw GatewayException.Invalid(param, $"'{param}' encodes to token id {id}, beyond this model's vocabulary of {model.VocabSize}");
        return ids;
    }
}
