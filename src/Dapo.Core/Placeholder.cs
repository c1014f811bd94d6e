namespace Dapo.Core;
