// Starts GraphiQL against the endpoint that served this page. Served from the binary with React and GraphiQL.
(function () {
  var endpoint = window.location.pathname.replace(/\/+$/, "") || "/graphql";
  var fetcher = GraphiQL.createFetcher({ url: endpoint });
  var defaultQuery = [
    "# portmirror: GraphQL API of the port mirroring controller.",
    "# With API tokens configured, open the Headers tab below and add",
    '#   {"Authorization": "Bearer <your token>"}',
    "",
    "query Overview {",
    "  portMirrors {",
    "    uuid name state",
    "    flowNetwork { name cidr encapsulation }",
    "    sessions { name type status statusReason",
    "      sourceNic { mac vmInstance { name } }",
    "      destinationNic { mac vmInstance { name } } }",
    "  }",
    "  switches { datapathId connected flowCount host { name } }",
    "}",
    ""
  ].join("\n");
  var root = ReactDOM.createRoot(document.getElementById("graphiql"));
  root.render(React.createElement(GraphiQL, {
    fetcher: fetcher,
    defaultQuery: defaultQuery,
    defaultEditorToolsVisibility: true,
    shouldPersistHeaders: false
  }));
})();
