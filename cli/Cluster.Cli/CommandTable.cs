namespace Cluster.Cli;

/// <summary>One verb of the <c>cluster</c> command.</summary>
public sealed record Command(string Verb, string Usage, Func<CliArgs, CancellationToken, Task<int>> Run);

/// <summary>Every verb the CLI knows. Each command lives in Commands/, one file per verb.</summary>
public static class CommandTable
{
    public static readonly Command[] All =
    [
        new Command("model init", Commands.ModelInitCommand.Usage, Commands.ModelInitCommand.Run),
        new Command("info", Commands.InfoCommand.Usage, Commands.InfoCommand.Run),
        new Command("logits", Commands.LogitsCommand.Usage, Commands.LogitsCommand.Run),
        new Command("generate", Commands.GenerateCommand.Usage, Commands.GenerateCommand.Run),
        new Command("tokenize", Commands.TokenizeCommand.Usage, Commands.TokenizeCommand.Run),
        new Command("detokenize", Commands.DetokenizeCommand.Usage, Commands.DetokenizeCommand.Run),
        new Command("serve attention", Commands.ServeAttentionCommand.Usage, Commands.ServeAttentionCommand.Run),
        new Command("up", Commands.UpCommand.Usage, Commands.UpCommand.Run),
        new Command("demo", Commands.DemoCommand.Usage, Commands.DemoCommand.Run),
        new Command("status", Commands.StatusCommand.Usage, Commands.StatusCommand.Run),
        new Command("serve expert", Commands.ServeExpertCommand.Usage, Commands.ServeExpertCommand.Run),
        new Command("experts plan", Commands.ExpertsPlanCommand.Usage, Commands.ExpertsPlanCommand.Run),
        new Command("experts status", Commands.ExpertsStatusCommand.Usage, Commands.ExpertsStatusCommand.Run),
        new Command("experts rebalance", Commands.ExpertsRebalanceCommand.Usage, Commands.ExpertsRebalanceCommand.Run),
        new Command("experts scale", Commands.ExpertsScaleCommand.Usage, Commands.ExpertsScaleCommand.Run),
        new Command("experts add", Commands.ExpertsAddCommand.Usage, Commands.ExpertsAddCommand.Run),
        new Command("experts drain", Commands.ExpertsDrainCommand.Usage, Commands.ExpertsDrainCommand.Run),
        new Command("serve gateway", Commands.ServeGatewayCommand.Usage, Commands.ServeGatewayCommand.Run),
    ];
}
