using Microsoft.AspNetCore.Http;

namespace Cluster.Gateway.OpenAi;

/// <summary>OpenAI's error responses: status code, error type and the body shape clients parse.</summary>
public static class ApiErrors
{
    public static int StatusOf(GatewayErrorKind kind) => kind switch
    {
        GatewayErrorKind.InvalidRequest => StatusCodes.Status400BadRequest,
        GatewayErrorKind.ModelNotFound => StatusCodes.Status404NotFound,
        GatewayErrorKind.Unauthenticated => StatusCodes.Status401Unauthorized,
        GatewayErrorKind.RateLimited or GatewayErrorKind.QueueFull => StatusCodes.Status429TooManyRequests,
        GatewayErrorKind.Unavailable => StatusCodes.Status503ServiceUnavailable,
        _ => StatusCodes.Status500InternalServerError,
    };

    public static string TypeOf(int status) => status switch
    {
        StatusCodes.Status400BadRequest or StatusCodes.Status401Unauthorized or StatusCodes.Status404NotFound or StatusCodes.Status405MethodNotAllowed
            or StatusCodes.Status413PayloadTooLarge or StatusCodes.Status415UnsupportedMediaType => "invalid_request_error",
        StatusCodes.Status429TooManyRequests => "rate_limit_error",
        StatusCodes.Status503ServiceUnavailable => "service_unavailable_error",
        _ => "server_error",
    };

    public static ErrorBody Body(GatewayException e) => Body(StatusOf(e.Kind), e.Message, e.Param, e.Code);

    public static ErrorBody Body(int status, string message, string? param = null, string? code = null) =>
        new() { Error = new ErrorDetail { Message = message, Type = TypeOf(status), Param = param, Code = code } };

    public static Task WriteAsync(HttpContext http, int status, ErrorBody body)
    {
        http.Response.StatusCode = status;
        http.Response.ContentType = "application/json";
        return System.Text.Json.JsonSerializer.SerializeAsync(http.Response.Body, body, OpenAiJson.Web.ErrorBody, http.RequestAborted);
    }

    /// <summary>The error's response; with a Retry-After header (whole seconds) when it says when to retry.</summary>
    public static Task WriteAsync(HttpContext http, GatewayException e)
    {
        if (e.RetryAfter is { } wait)
            http.Response.Headers.RetryAfter = Security.KeyAccount.RetrySeconds(wait).ToString(System.Globalization.CultureInfo.InvariantCulture);
        return WriteAsync(http, StatusOf(e.Kind), Body(e));
    }
}
